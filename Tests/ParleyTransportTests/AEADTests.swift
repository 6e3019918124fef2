import Testing

@testable import ParleyCrypto

@Suite struct AEADTests {
    /// draft-irtf-cfrg-xchacha-03, appendix A.3.1 (AEAD_XCHACHA20_POLY1305).
    private enum XChaChaDraftVector {
        static let key = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        static let nonce = "404142434445464748494a4b4c4d4e4f5051525354555657"
        static let associatedData = "50515253c0c1c2c3c4c5c6c7"
        static let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
                .utf8)
        static let ciphertext =
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216"
            + "cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
        static let tag = "c0875924c1c7987947deafd8780acf49"
    }

    private let key = SecretBytes(copying: SecureRandom.bytes(AEAD.keyBytes))
    private let nonce = SecureRandom.bytes(AEAD.nonceBytes)

    @Test func sizesAreXChaCha20Poly1305s() {
        #expect(AEAD.keyBytes == 32)
        #expect(AEAD.nonceBytes == 24)
        #expect(AEAD.tagBytes == 16)
    }

    @Test func draftKnownAnswerSealsAndOpens() throws {
        let key = SecretBytes(copying: hexBytes(XChaChaDraftVector.key))
        let nonce = hexBytes(XChaChaDraftVector.nonce)
        let ad = hexBytes(XChaChaDraftVector.associatedData)
        let sealed = AEAD.seal(XChaChaDraftVector.plaintext, key: key, nonce: nonce, associatedData: ad)
        #expect(Hex.encode(sealed) == XChaChaDraftVector.ciphertext + XChaChaDraftVector.tag)
        #expect(try AEAD.open(sealed, key: key, nonce: nonce, associatedData: ad) == XChaChaDraftVector.plaintext)
    }

    @Test(arguments: [0, 1, 15, 16, 17, 1000, 70_000])
    func sealedMessageOpensToThePlaintext(count: Int) throws {
        let plaintext = SecureRandom.bytes(count)
        let sealed = AEAD.seal(plaintext, key: key, nonce: nonce, associatedData: [1, 2, 3])
        #expect(sealed.count == count + AEAD.tagBytes)
        #expect(try AEAD.open(sealed, key: key, nonce: nonce, associatedData: [1, 2, 3]) == plaintext)
    }

    @Test func everyFlippedBitOfCiphertextOrTagFails() {
        let sealed = AEAD.seal(Array("pay 10 to the listener".utf8), key: key, nonce: nonce)
        for bit in 0..<(sealed.count * 8) {
            var tampered = sealed
            tampered[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            #expect(throws: CryptoError.authenticationFailed) { try AEAD.open(tampered, key: key, nonce: nonce) }
        }
    }

    @Test func everyFlippedBitOfTheNonceFails() {
        let sealed = AEAD.seal([42], key: key, nonce: nonce)
        for bit in 0..<(AEAD.nonceBytes * 8) {
            var other = nonce
            other[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            #expect(throws: CryptoError.authenticationFailed) { try AEAD.open(sealed, key: key, nonce: other) }
        }
    }

    @Test func wrongKeyFails() {
        let sealed = AEAD.seal([1, 2, 3], key: key, nonce: nonce)
        let otherKey = SecretBytes(copying: SecureRandom.bytes(AEAD.keyBytes))
        #expect(throws: CryptoError.authenticationFailed) { try AEAD.open(sealed, key: otherKey, nonce: nonce) }
    }

    @Test func differentAssociatedDataFails() {
        let sealed = AEAD.seal([1, 2, 3], key: key, nonce: nonce, associatedData: [7])
        #expect(throws: CryptoError.authenticationFailed) { try AEAD.open(sealed, key: key, nonce: nonce) }
        #expect(throws: CryptoError.authenticationFailed) {
            try AEAD.open(sealed, key: key, nonce: nonce, associatedData: [8])
        }
    }

    @Test func truncatedOrExtendedCiphertextFails() {
        let sealed = AEAD.seal(Array("hello".utf8), key: key, nonce: nonce)
        for count in 0..<sealed.count {
            #expect(throws: CryptoError.authenticationFailed) {
                try AEAD.open(Array(sealed.prefix(count)), key: key, nonce: nonce)
            }
        }
        #expect(throws: CryptoError.authenticationFailed) { try AEAD.open(sealed + [0], key: key, nonce: nonce) }
    }

    @Test func derivedKeyIsTheDomainSeparatedHashOfSecretAndTranscript() throws {
        let secret = SecureRandom.bytes(32)
        let transcript = try Digest(bytes: SecureRandom.bytes(32))
        let derived = AEAD.deriveKey(.sessionKeyDialerToListener, from: SecretBytes(copying: secret), transcript: transcript)
        let expected = Blake2b.hash256(domain: .sessionKeyDialerToListener, secret + transcript.bytes)
        #expect(derived.count == AEAD.keyBytes)
        #expect(derived.withUnsafeBytes { Array($0) } == expected.bytes)
    }

    @Test func derivedKeysDependOnDomainSecretAndTranscript() throws {
        let secret = SecretBytes(copying: [UInt8](repeating: 5, count: 32))
        let otherSecret = SecretBytes(copying: [UInt8](repeating: 6, count: 32))
        let transcript = try Digest(bytes: [UInt8](repeating: 7, count: 32))
        let otherTranscript = try Digest(bytes: [UInt8](repeating: 8, count: 32))
        let keys = [
            AEAD.deriveKey(.sessionKeyDialerToListener, from: secret, transcript: transcript),
            AEAD.deriveKey(.sessionKeyListenerToDialer, from: secret, transcript: transcript),
            AEAD.deriveKey(.sessionKeyDialerToListener, from: otherSecret, transcript: transcript),
            AEAD.deriveKey(.sessionKeyDialerToListener, from: secret, transcript: otherTranscript),
        ].map { $0.withUnsafeBytes { Array($0) } }
        #expect(Set(keys).count == keys.count)
    }
}

private func hexBytes(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text) else { preconditionFailure("bad hex in test vector: \(text)") }
    return bytes
}
