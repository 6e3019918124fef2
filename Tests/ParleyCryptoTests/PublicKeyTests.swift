import PropertyBased
import Testing

@testable import ParleyCrypto

@Suite struct PublicKeyTests {
    @Test func hexRoundTrips() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 32...32)) { bytes in
            let key = try PublicKey(bytes: bytes)
            #expect(key.hex.count == 64)
            #expect(key.hex == key.hex.lowercased())
            #expect(try PublicKey(hex: key.hex) == key)
        }
    }

    @Test func uppercaseHexIsAccepted() throws {
        let key = try PublicKey(bytes: RFC8032Vector1.publicKey)
        #expect(try PublicKey(hex: key.hex.uppercased()) == key)
    }

    @Test(arguments: [
        "zz5a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511",
        " d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    ])
    func nonHexTextIsInvalidHex(text: String) {
        #expect(throws: CryptoError.invalidHex(what: "public key")) { try PublicKey(hex: text) }
    }

    @Test(arguments: [("", 0), ("d75a", 2), (String(repeating: "ab", count: 33), 33)])
    func hexOfWrongLengthIsRejected(text: String, byteCount: Int) {
        #expect(throws: CryptoError.wrongLength(what: "public key", expected: 32, got: byteCount)) {
            try PublicKey(hex: text)
        }
    }

    @Test func fixedSizeValuesRejectWrongLengths() {
        #expect(throws: CryptoError.wrongLength(what: "public key", expected: 32, got: 31)) {
            try PublicKey(bytes: [UInt8](repeating: 0, count: 31))
        }
        #expect(throws: CryptoError.wrongLength(what: "signature", expected: 64, got: 65)) {
            try Signature(bytes: [UInt8](repeating: 0, count: 65))
        }
        #expect(throws: CryptoError.wrongLength(what: "digest", expected: 32, got: 0)) {
            try Digest(bytes: [])
        }
    }

    @Test func orderingIsLexicographicOnBytes() throws {
        let low = try PublicKey(bytes: [0x01] + [UInt8](repeating: 0xff, count: 31))
        let high = try PublicKey(bytes: [0x02] + [UInt8](repeating: 0x00, count: 31))
        #expect(low < high)
        #expect(!(high < low))
        #expect([high, low].sorted() == [low, high])
    }

    @Test func shortIDIsTheFirstEightHexDigitsAndDescriptionIsTheHumanForm() throws {
        let key = try PublicKey(bytes: RFC8032Vector1.publicKey)
        #expect(key.shortID == "d75a9801")
        #expect(key.description == key.humanForm)
    }

    @Test func bytesThatAreNotACurvePointVerifyNothing() throws {
        let key = try PublicKey(bytes: [UInt8](repeating: 0xff, count: 32))
        let signature = try Signature(bytes: [UInt8](repeating: 0, count: 64))
        #expect(!key.isValidSignature(signature, for: []))
    }
}
