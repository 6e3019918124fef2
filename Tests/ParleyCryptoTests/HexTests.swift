import PropertyBased
import Testing

@testable import ParleyCrypto

@Suite struct HexTests {
    @Test func encodeThenDecodeRoundTrips() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...64)) { bytes in
            let text = Hex.encode(bytes)
            #expect(text.count == bytes.count * 2)
            #expect(Hex.decode(text) == bytes)
            #expect(Hex.decode(text.uppercased()) == bytes)
        }
    }

    @Test func bufferEncoderMatchesStringEncoder() async {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...64)) { bytes in
            var out = [UInt8](repeating: 0, count: bytes.count * 2)
            bytes.withUnsafeBytes { input in out.withUnsafeMutableBytes { Hex.encode(input, into: $0) } }
            #expect(String(decoding: out, as: UTF8.self) == Hex.encode(bytes))
        }
    }

    @Test func everyByteValueEncodesToItsTwoDigits() {
        for byte in UInt8.min...UInt8.max {
            let expected = (byte < 16 ? "0" : "") + String(byte, radix: 16)
            #expect(Hex.encode([byte]) == expected)
        }
    }

    @Test func decoderAcceptsExactlyTheHexDigits() {
        let digits = Set("0123456789abcdefABCDEF".utf8)
        for character in UInt8.min...UInt8.max {
            let text = String(decoding: [character, UInt8(ascii: "0")], as: UTF8.self)
            let accepted = Hex.decode(text) != nil
            #expect(accepted == digits.contains(character), "character \(character)")
        }
    }

    @Test func strictDecoderRefusesUppercase() {
        let ascii = Array("AB".utf8)
        var out = [UInt8](repeating: 0, count: 1)
        let ok = ascii.withUnsafeBytes { input in out.withUnsafeMutableBytes { Hex.decode(input, into: $0, acceptUppercase: false) } }
        #expect(!ok)
    }

    @Test func oddDigitCountIsRefused() {
        #expect(Hex.decode("abc") == nil)
    }
}
