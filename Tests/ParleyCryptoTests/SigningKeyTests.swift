import PropertyBased
import Testing

@testable import ParleyCrypto

@Suite struct SigningKeyTests {
    @Test(arguments: [[], [0], Array("a channel state".utf8), [UInt8](repeating: 0xab, count: 10_000)])
    func signatureVerifiesUnderTheSignersPublicKey(message: [UInt8]) {
        let key = SigningKey()
        #expect(key.publicKey.isValidSignature(key.sign(message), for: message))
    }

    @Test func flippedBitInMessageFailsVerification() async {
        let key = SigningKey()
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 1...64), Gen.int(in: 0...511)) { message, bit in
            let signature = key.sign(message)
            var tampered = message
            let index = (bit / 8) % message.count
            tampered[index] ^= UInt8(1) << UInt8(bit % 8)
            #expect(!key.publicKey.isValidSignature(signature, for: tampered))
        }
    }

    @Test func flippedBitInSignatureFailsVerification() async {
        let key = SigningKey()
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...64), Gen.int(in: 0...(Signature.byteCount * 8 - 1))) {
            message, bit in
            var signatureBytes = key.sign(message).bytes
            signatureBytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            let tampered = try Signature(bytes: signatureBytes)
            #expect(!key.publicKey.isValidSignature(tampered, for: message))
        }
    }

    @Test func signatureFromAnotherKeyFailsVerification() {
        let signer = SigningKey()
        let other = SigningKey()
        let message = Array("pay 10".utf8)
        #expect(!other.publicKey.isValidSignature(signer.sign(message), for: message))
    }

    @Test func rfc8032Vector1SeedGivesKnownPublicKeyAndSignature() throws {
        let key = try SigningKey(seed: RFC8032Vector1.seed)
        #expect(key.publicKey.bytes == RFC8032Vector1.publicKey)
        #expect(key.sign([]).bytes == RFC8032Vector1.signatureOfEmptyMessage)
        #expect(key.publicKey.isValidSignature(try Signature(bytes: RFC8032Vector1.signatureOfEmptyMessage), for: []))
    }

    @Test func withSeedExposesTheSeedTheKeyWasMadeFrom() throws {
        let key = try SigningKey(seed: RFC8032Vector1.seed)
        #expect(key.withSeed { Array($0) } == RFC8032Vector1.seed)
    }

    @Test func keyRebuiltFromItsSeedHasTheSamePublicKey() throws {
        let key = SigningKey()
        let rebuilt = try key.withSeed { try SigningKey(seed: $0) }
        #expect(rebuilt.publicKey == key.publicKey)
    }

    @Test func freshKeysDiffer() {
        #expect(SigningKey().publicKey != SigningKey().publicKey)
    }

    @Test(arguments: [0, 31, 33, 64])
    func seedOfWrongLengthIsRejected(count: Int) {
        #expect(throws: CryptoError.wrongLength(what: "signing key seed", expected: 32, got: count)) {
            try SigningKey(seed: [UInt8](repeating: 7, count: count))
        }
    }
}
