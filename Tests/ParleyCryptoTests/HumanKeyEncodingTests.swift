import PropertyBased
import Testing

@testable import ParleyCrypto

@Suite struct HumanKeyEncodingTests {
    static let base32Alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
    /// Base32 characters plus the typos people make: capitals, look-alike digits, punctuation.
    static let typoCharacters = base32Alphabet + Array("ABCXYZ0189-_ .lO\u{e9}")

    @Test func humanFormRoundTrips() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 32...32)) { bytes in
            let key = try PublicKey(bytes: bytes)
            #expect(try PublicKey(humanForm: key.humanForm) == key)
        }
    }

    @Test func humanFormIsPrefixedLowercaseBase32WithChecksum() throws {
        let form = try PublicKey(bytes: RFC8032Vector1.publicKey).humanForm
        #expect(form.hasPrefix("pk1"))
        #expect(form.count == 3 + 58)  // 36 bytes = 288 bits = 58 base32 characters
        #expect(form.dropFirst(3).allSatisfy { Self.base32Alphabet.contains($0) })
    }

    /// Pins the format (cross-checked with Python hashlib + base64): a change here would
    /// invalidate every key people have already shared.
    @Test func humanFormOfRFC8032Vector1IsStable() throws {
        let key = try PublicKey(bytes: RFC8032Vector1.publicKey)
        #expect(key.humanForm == "pk125njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenh2pmxva")
    }

    @Test func anySingleCharacterSubstitutionIsRejected() async {
        await propertyCheck(
            count: 500, input: Gen.uint8().array(of: 32...32), Gen.int(in: 0...60), Gen.element(of: Self.typoCharacters)
        ) { bytes, position, replacement in
            let form = Array(try PublicKey(bytes: bytes).humanForm)
            guard let replacement, form[position] != replacement else { return }
            var typo = form
            typo[position] = replacement
            #expect(throws: CryptoError.self) { try PublicKey(humanForm: String(typo)) }
        }
    }

    @Test func substitutingAnotherBase32CharacterIsABadChecksum() async {
        await propertyCheck(
            count: 500, input: Gen.uint8().array(of: 32...32), Gen.int(in: 3...60), Gen.element(of: Self.base32Alphabet)
        ) { bytes, position, replacement in
            let form = Array(try PublicKey(bytes: bytes).humanForm)
            guard let replacement, form[position] != replacement else { return }
            var typo = form
            typo[position] = replacement
            #expect(throws: CryptoError.badChecksum) { try PublicKey(humanForm: String(typo)) }
        }
    }

    @Test func droppedOrDoubledCharacterIsRejected() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 32...32), Gen.int(in: 3...60)) { bytes, position in
            let form = Array(try PublicKey(bytes: bytes).humanForm)
            var dropped = form
            dropped.remove(at: position)
            var doubled = form
            doubled.insert(form[position], at: position)
            #expect(throws: CryptoError.badHumanForm("expected 61 characters, got 60")) {
                try PublicKey(humanForm: String(dropped))
            }
            #expect(throws: CryptoError.badHumanForm("expected 61 characters, got 62")) {
                try PublicKey(humanForm: String(doubled))
            }
        }
    }

    @Test func uppercaseHumanFormIsRejectedWithAHint() throws {
        let form = try PublicKey(bytes: RFC8032Vector1.publicKey).humanForm
        #expect(throws: CryptoError.badHumanForm("human-form keys are lowercase; it must start with \"pk1\"")) {
            try PublicKey(humanForm: form.uppercased())
        }
    }

    @Test(arguments: ["", "pk", "pk2abc", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"])
    func textWithoutThePrefixIsRejected(text: String) {
        #expect(throws: CryptoError.badHumanForm("it must start with \"pk1\"")) { try PublicKey(humanForm: text) }
    }

    @Test func characterOutsideTheAlphabetIsNamedWithItsPosition() throws {
        var form = Array(try PublicKey(bytes: RFC8032Vector1.publicKey).humanForm)
        form[10] = "0"
        let expected = CryptoError.badHumanForm(
            "character \"0\" at position 11 is not allowed; only lowercase a-z and digits 2-7 follow \"pk1\"")
        #expect(throws: expected) { try PublicKey(humanForm: String(form)) }
    }

    @Test func base32MatchesRFC4648TestVectors() {
        // RFC 4648 section 10, lowercased and without padding.
        let vectors = [("", ""), ("f", "my"), ("fo", "mzxq"), ("foo", "mzxw6"), ("foob", "mzxw6yq"),
                       ("fooba", "mzxw6ytb"), ("foobar", "mzxw6ytboi")]
        for (plain, encoded) in vectors {
            #expect(Base32.encode(Array(plain.utf8)) == encoded)
            #expect(Base32.decodeCanonical(Array(encoded.utf8)) == Array(plain.utf8))
        }
    }

    @Test func base32RefusesNonZeroUnusedBits() {
        // "my" is "f"; "mz" carries the same byte with a stray low bit set.
        #expect(Base32.decodeCanonical(Array("mz".utf8)) == nil)
    }
}
