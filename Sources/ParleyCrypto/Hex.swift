/// Hexadecimal encoding and decoding.
///
/// Decoding does not branch on the digits' values, so it can parse secret seeds without
/// leaking them through timing; only the final valid/invalid answer depends on the input.
public enum Hex {
    private static let lowercaseDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lowercase hex of `bytes`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(lowercaseDigits[Int(byte >> 4)])
            out.append(lowercaseDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes lowercase hex of `bytes` into `out`, which must hold exactly twice as many bytes.
    /// Branch-free in the byte values, for encoding secrets.
    static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == bytes.count * 2, "hex output buffer has the wrong size")
        for (index, byte) in bytes.enumerated() {
            out[2 * index] = digit(byte >> 4)
            out[2 * index + 1] = digit(byte & 0x0f)
        }
    }

    /// Decodes hex text; nil when a character is not a hex digit or the digit count is odd.
    public static func decode(_ text: String, acceptUppercase: Bool = true) -> [UInt8]? {
        let ascii = Array(text.utf8)
        guard ascii.count.isMultiple(of: 2) else { return nil }
        var out = [UInt8](repeating: 0, count: ascii.count / 2)
        let ok = ascii.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { decode(input, into: $0, acceptUppercase: acceptUppercase) }
        }
        return ok ? out : nil
    }

    /// Decodes `ascii` (exactly twice `out.count` characters) into `out`.
    /// Returns false if any character is not a hex digit; `out` then holds garbage.
    static func decode(
        _ ascii: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, acceptUppercase: Bool
    ) -> Bool {
        guard ascii.count == out.count * 2 else { return false }
        var allValid: UInt8 = 0xff
        for index in 0..<out.count {
            let high = nibble(ascii[2 * index], acceptUppercase: acceptUppercase)
            let low = nibble(ascii[2 * index + 1], acceptUppercase: acceptUppercase)
            allValid &= high.valid & low.valid
            out[index] = (high.value << 4) | low.value
        }
        return allValid == 0xff
    }

    /// Lowercase digit for a nibble, computed without a table lookup indexed by the secret.
    @inline(__always)
    private static func digit(_ nibble: UInt8) -> UInt8 {
        let n = UInt32(nibble)
        // 0xff..ff when n > 9, else 0: adds the gap between '9'+1 and 'a'.
        let letterMask = (9 &- n) >> 8
        return UInt8(truncatingIfNeeded: 0x30 &+ n &+ (letterMask & 0x27))
    }

    /// The value of one hex character and a mask that is 0xff when it is a valid digit, 0 otherwise.
    /// Same arithmetic as libsodium's `sodium_hex2bin`.
    @inline(__always)
    private static func nibble(_ character: UInt8, acceptUppercase: Bool) -> (value: UInt8, valid: UInt8) {
        let c = UInt32(character)
        let number = c ^ 0x30
        let numberMask = (number &- 10) >> 8
        let lower = c &- 0x57
        let lowerMask = ((lower &- 10) ^ (lower &- 16)) >> 8
        let upper = c &- 0x37
        let upperMask = acceptUppercase ? ((upper &- 10) ^ (upper &- 16)) >> 8 : 0
        let value = (numberMask & number) | (lowerMask & lower) | (upperMask & upper)
        let valid = numberMask | lowerMask | upperMask
        return (UInt8(truncatingIfNeeded: value & 0x0f), UInt8(truncatingIfNeeded: valid))
    }
}
