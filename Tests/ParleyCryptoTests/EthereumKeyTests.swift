import PropertyBased
import Testing

@testable import ParleyCrypto

/// Vectors from eth-keys 0.8 (pure Python, RFC 6979 nonces): the key, its checksummed
/// address, and its signature of keccak256("parley").
@Suite struct EthereumKeyTests {
    static let digestHex = "514dd1e5379acebb6a59fc81e401d10f3b8ad3d118f3c78f3aca0372d153043d"
    static let vectors: [(secret: String, address: String, signature: String)] = [
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
            "8a38c917c1bcccb0539858dbc0b59da21ae0614ea3d9c92bcfdf1188038a35333975ac927f50cca21a66393ce5f34b673c1a1b562cbe3481f6463668f49c59111c"
        ),
        (
            "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
            "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
            "6c78fc3d54de6c5e8e799c525b633f7e442221ebbe306df722d74d387da804257c127fc1122e9fa408df3e390c00bde4a4af70b0ad647c2cb36cf0086d98ef661b"
        ),
        (
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
            "0x80C0dbf239224071c59dD8970ab9d542E3414aB2",
            "1c72cef58af7e13cfb9ec814ab7c051959041e2114e1a90d0ba56bef6a704e1d57de5e17aae44dba52c94abeb06866b16d5e84bfb4ffe710e2f2d69bbcca95d91c"
        ),
    ]

    @Test func keysAddressesAndSignaturesMatchEthKeys() throws {
        let digest = try Digest(bytes: bytes(hex: Self.digestHex))
        #expect(Keccak256.hash(Array("parley".utf8)) == digest)
        for vector in Self.vectors {
            let key = try EthereumSigningKey(secretBytes: bytes(hex: vector.secret))
            #expect(key.address.checksummed == vector.address)
            let signature = key.sign(digest)
            #expect(Hex.encode(signature.bytes) == vector.signature)
            #expect(signature.recoverSigner(of: digest) == key.address)
        }
    }

    @Test func secretsOutsideTheCurveOrderAreRefused() {
        for secret in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",  // n
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            #expect(throws: CryptoError.self) { try EthereumSigningKey(secretBytes: bytes(hex: secret)) }
        }
        #expect(throws: CryptoError.wrongLength(what: "secp256k1 secret key", expected: 32, got: 31)) {
            try EthereumSigningKey(secretBytes: [UInt8](repeating: 1, count: 31))
        }
    }

    @Test func signaturesAreLowSAndRecoverTheirSigner() async {
        let key = EthereumSigningKey()
        await propertyCheck(count: 100, input: Gen.uint8().array(of: 0...80)) { message in
            let digest = Keccak256.hash(message)
            let signature = key.sign(digest)
            #expect(signature.bytes[64] == 27 || signature.bytes[64] == 28)
            #expect(!Secp256k1.halfOrder.lexicographicallyPrecedes(signature.bytes[32..<64]))
            #expect(signature.recoverSigner(of: digest) == key.address)
        }
    }

    @Test func aTamperedSignatureOrDigestRecoversSomeoneElse() async {
        let key = EthereumSigningKey()
        await propertyCheck(count: 100, input: Gen.uint8().array(of: 1...40), Gen.int(in: 0...(64 * 8 - 1))) { message, bit in
            let digest = Keccak256.hash(message)
            var bytes = key.sign(digest).bytes
            bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            // A flip may push s above n/2, which the type refuses outright: that is also a refusal.
            if let tampered = try? RecoverableSignature(bytes: bytes) {
                #expect(tampered.recoverSigner(of: digest) != key.address)
            }
            #expect(key.sign(digest).recoverSigner(of: Keccak256.hash(message + [0])) != key.address)
        }
    }

    @Test func theHighSTwinOfAValidSignatureIsRefused() throws {
        // s' = n - s verifies under plain ECDSA with the other v; EIP-2 forbids it so that a
        // third party cannot turn one signature into a second valid one.
        let key = EthereumSigningKey()
        let signature = key.sign(Keccak256.hash([7]))
        let order = bytes(hex: "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
        var twin = signature.bytes
        var borrow = 0
        for index in (0..<32).reversed() {
            let difference = Int(order[index]) - Int(signature.bytes[32 + index]) - borrow
            twin[32 + index] = UInt8((difference + 256) % 256)
            borrow = difference < 0 ? 1 : 0
        }
        twin[64] = signature.bytes[64] == 27 ? 28 : 27
        #expect(throws: CryptoError.self) { try RecoverableSignature(bytes: twin) }
    }

    @Test func malformedSignaturesAreRefusedOrRecoverNobody() throws {
        #expect(throws: CryptoError.self) { try RecoverableSignature(bytes: [UInt8](repeating: 0, count: 64)) }
        var badV = [UInt8](repeating: 1, count: 65)
        badV[64] = 0
        #expect(throws: CryptoError.self) { try RecoverableSignature(bytes: badV) }
        var zero = [UInt8](repeating: 0, count: 65)
        zero[64] = 27
        #expect(try RecoverableSignature(bytes: zero).recoverSigner(of: Keccak256.hash([1])) == nil)
    }

    @Test func addressTextRoundTripsAndChecksumCatchesTypos() throws {
        let address = try EthereumAddress(hex: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")
        #expect(try EthereumAddress(hex: address.checksummed) == address)
        #expect(try EthereumAddress(hex: "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23") == address)
        #expect(try EthereumAddress(hex: "2C7536E3605D9C16A7A3D7B1898E529396A65C23") == address)
        // One letter's case flipped: the checksum no longer matches.
        #expect(throws: CryptoError.self) { try EthereumAddress(hex: "0x2C7536E3605D9C16a7a3D7b1898e529396a65c23") }
        #expect(throws: CryptoError.self) { try EthereumAddress(hex: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c2") }
        #expect(throws: CryptoError.self) { try EthereumAddress(hex: "0xzz7536E3605D9C16a7a3D7b1898e529396a65c23") }
    }

    @Test func eip55ExamplesFromTheEIP() throws {
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            #expect(try EthereumAddress(hex: text).checksummed == text)
        }
    }
}
