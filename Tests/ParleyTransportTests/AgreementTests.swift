import Testing

@testable import ParleyCrypto

@Suite struct AgreementTests {
    /// RFC 7748, section 6.1.
    private enum RFC7748 {
        static let alicePrivate = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
        static let alicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        static let bobPrivate = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
        static let bobPublic = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        static let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    }

    /// Points whose multiples are the identity (from the libsodium and curve25519 literature):
    /// every one of them must be refused, whatever our secret.
    private static let lowOrderPoints = [
        String(repeating: "00", count: 32),
        "01" + String(repeating: "00", count: 31),
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ]

    @Test func rfc7748AlicePrivateKeyGivesHerPublicKey() throws {
        let alice = try AgreementKey(secret: hexBytes(RFC7748.alicePrivate))
        #expect(alice.publicKey.hex == RFC7748.alicePublic)
    }

    @Test func rfc7748SharedSecretIsTheSameFromBothSides() throws {
        let alice = try AgreementKey(secret: hexBytes(RFC7748.alicePrivate))
        let bob = try AgreementKey(secret: hexBytes(RFC7748.bobPrivate))
        #expect(bob.publicKey.hex == RFC7748.bobPublic)
        let fromAlice = try alice.sharedSecret(with: AgreementPublicKey(bytes: hexBytes(RFC7748.bobPublic)))
        let fromBob = try bob.sharedSecret(with: AgreementPublicKey(bytes: hexBytes(RFC7748.alicePublic)))
        #expect(fromAlice.withUnsafeBytes { Hex.encode($0) } == RFC7748.shared)
        #expect(fromBob.withUnsafeBytes { Hex.encode($0) } == RFC7748.shared)
    }

    @Test func freshKeysAgreeWithEachOtherAndDiffer() throws {
        let a = AgreementKey()
        let b = AgreementKey()
        #expect(a.publicKey != b.publicKey)
        let ab = try a.sharedSecret(with: b.publicKey).withUnsafeBytes { Array($0) }
        let ba = try b.sharedSecret(with: a.publicKey).withUnsafeBytes { Array($0) }
        #expect(ab == ba)
        #expect(ab.count == 32)
        #expect(ab != [UInt8](repeating: 0, count: 32))
    }

    @Test(arguments: lowOrderPoints)
    func lowOrderPeerKeyIsAWeakKeyAgreement(point: String) throws {
        let peer = try AgreementPublicKey(bytes: hexBytes(point))
        #expect(throws: CryptoError.weakKeyAgreement) { try AgreementKey().sharedSecret(with: peer) }
    }

    @Test(arguments: [0, 31, 33, 64])
    func secretOfWrongLengthIsRejected(count: Int) {
        #expect(throws: CryptoError.wrongLength(what: "agreement key secret", expected: 32, got: count)) {
            try AgreementKey(secret: [UInt8](repeating: 3, count: count))
        }
    }

    @Test(arguments: [0, 31, 33])
    func publicKeyOfWrongLengthIsRejected(count: Int) {
        #expect(throws: CryptoError.wrongLength(what: "agreement public key", expected: 32, got: count)) {
            try AgreementPublicKey(bytes: [UInt8](repeating: 9, count: count))
        }
    }
}

private func hexBytes(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text) else { preconditionFailure("bad hex in test vector: \(text)") }
    return bytes
}
