import PropertyBased
import Testing

@testable import ParleyCrypto

@Suite struct Blake2bTests {
    static let tagAB = DigestDomain("ab")
    static let tagA = DigestDomain("a")

    @Test func plainBlake2b256OfAbcMatchesKnownAnswer() {
        #expect(Blake2b.plainHash256(Array("abc".utf8)).hex == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
    }

    @Test func domainHashIsPlainHashOfLengthPrefixedTagAndData() {
        let data = Array("state bytes".utf8)
        let tag = Array("parley/state/v2".utf8)
        #expect(Blake2b.hash256(domain: .stateSignature, data) == Blake2b.plainHash256([UInt8(tag.count)] + tag + data))
    }

    /// The domain prefix and the state are no longer built on the heap; the digest must not change.
    @Test func domainHashMatchesTheLengthPrefixedConstructionForRandomData() async {
        let domains: [DigestDomain] = [
            .channelID, .stateSignature, .keyChecksum, .handshakeTranscript,
            .sessionKeyDialerToListener, .sessionKeyListenerToDialer, Self.tagA,
        ]
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let domain = domains[Int(rng.next() % UInt64(domains.count))]
            let data = (0..<Int(rng.next() % 300)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let tag = Array(domain.tag.utf8)
            let expected = Blake2b.plainHash256([UInt8(tag.count)] + tag + data)
            #expect(Blake2b.hash256(domain: domain, data) == expected, "seed \(seed)")
            #expect(data.withUnsafeBytes { Blake2b.hash256(domain: domain, $0) } == expected, "seed \(seed)")
        }
    }

    @Test func sameDataInDifferentDomainsHashesDifferently() {
        let data = Array("same bytes".utf8)
        let digests = Set([DigestDomain.channelID, .stateSignature, .keyChecksum].map { Blake2b.hash256(domain: $0, data) })
        #expect(digests.count == 3)
    }

    @Test func lengthPrefixKeepsTagAndDataApart() {
        #expect(Blake2b.hash256(domain: Self.tagAB, Array("c".utf8)) != Blake2b.hash256(domain: Self.tagA, Array("bc".utf8)))
    }

    @Test func arrayAndRawBufferOverloadsAgree() {
        let data: [UInt8] = Array(0...200)
        let fromArray = Blake2b.hash256(domain: .channelID, data)
        let fromBuffer = data.withUnsafeBytes { Blake2b.hash256(domain: .channelID, $0) }
        #expect(fromArray == fromBuffer)
        #expect(Blake2b.hash256(domain: .channelID, []) == [UInt8]().withUnsafeBytes { Blake2b.hash256(domain: .channelID, $0) })
    }

    @Test func builtInDomainsHaveTheirDocumentedTags() {
        #expect(DigestDomain.channelID.tag == "parley/channel-id/v3")
        #expect(DigestDomain.stateSignature.tag == "parley/state/v2")
        #expect(DigestDomain.keyChecksum.tag == "parley/key-checksum/v1")
    }

    @Test func digestDescriptionIsLowercaseHex() {
        let digest = Blake2b.plainHash256([])
        #expect(digest.description == digest.hex)
        #expect(digest.hex.count == 64)
        #expect(digest.hex == digest.hex.lowercased())
    }
}
