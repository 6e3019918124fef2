/// The human form of a public key: what people paste into chats and config files.
///
/// `"pk1"` followed by lowercase RFC 4648 base32, without padding, of the 32 key bytes and a
/// 4-byte checksum (the first bytes of BLAKE2b-256 in the ``DigestDomain/keyChecksum`` domain).
/// Decoding is strict — lowercase only, exact length, canonical final character — so every
/// string names at most one key and any single-character typo is caught.
extension PublicKey {
    static let humanFormPrefix = "pk1"
    static let checksumByteCount = 4

    public var humanForm: String {
        Self.humanFormPrefix + Base32.encode(bytes + Self.checksum(of: bytes))
    }

    public init(humanForm: String) throws(CryptoError) {
        let prefix = Self.humanFormPrefix
        guard humanForm.hasPrefix(prefix) else {
            if humanForm.lowercased().hasPrefix(prefix) {
                throw .badHumanForm("human-form keys are lowercase; it must start with \"\(prefix)\"")
            }
            throw .badHumanForm("it must start with \"\(prefix)\"")
        }
        let body = humanForm.dropFirst(prefix.count)
        for (offset, character) in body.enumerated() where !Base32.isAlphabetCharacter(character) {
            throw .badHumanForm(
                "character \"\(character)\" at position \(prefix.count + offset + 1) is not allowed; "
                    + "only lowercase a-z and digits 2-7 follow \"\(prefix)\"")
        }
        let payloadCount = Self.byteCount + Self.checksumByteCount
        let expectedLength = prefix.count + Base32.encodedLength(byteCount: payloadCount)
        guard humanForm.utf8.count == expectedLength else {
            throw .badHumanForm("expected \(expectedLength) characters, got \(humanForm.utf8.count)")
        }
        // Unused low bits of the last character count as part of the checksum: a typo that
        // only changes them must be refused, or two strings would name the same key.
        guard let payload = Base32.decodeCanonical(Array(body.utf8)), payload.count == payloadCount else {
            throw .badChecksum
        }
        let keyBytes = Array(payload.prefix(Self.byteCount))
        guard Array(payload.suffix(Self.checksumByteCount)) == Self.checksum(of: keyBytes) else {
            throw .badChecksum
        }
        self.init(checkedBytes: keyBytes)
    }

    private static func checksum(of keyBytes: [UInt8]) -> [UInt8] {
        Array(Blake2b.hash256(domain: .keyChecksum, keyBytes).bytes.prefix(checksumByteCount))
    }
}

/// RFC 4648 base32 with the lowercase alphabet and no padding.
enum Base32 {
    private static let alphabet: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
    private static let bitsPerCharacter = 5

    static func encodedLength(byteCount: Int) -> Int {
        (byteCount * 8 + bitsPerCharacter - 1) / bitsPerCharacter
    }

    static func isAlphabetCharacter(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        return value(of: ascii) != nil
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(encodedLength(byteCount: bytes.count))
        var buffer: UInt32 = 0
        var bitCount = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bitCount += 8
            while bitCount >= bitsPerCharacter {
                bitCount -= bitsPerCharacter
                out.append(alphabet[Int((buffer >> UInt32(bitCount)) & 0x1f)])
            }
        }
        if bitCount > 0 {
            out.append(alphabet[Int((buffer << UInt32(bitsPerCharacter - bitCount)) & 0x1f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes text produced by ``encode(_:)``; nil for a character outside the alphabet, an
    /// impossible length, or unused trailing bits that are not zero (a non-canonical encoding).
    static func decodeCanonical(_ ascii: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(ascii.count * bitsPerCharacter / 8)
        var buffer: UInt32 = 0
        var bitCount = 0
        for character in ascii {
            guard let digit = value(of: character) else { return nil }
            buffer = (buffer << UInt32(bitsPerCharacter)) | UInt32(digit)
            bitCount += bitsPerCharacter
            if bitCount >= 8 {
                bitCount -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bitCount)))
            }
        }
        let leftoverMask = (UInt32(1) << UInt32(bitCount)) - 1
        guard bitCount < bitsPerCharacter, buffer & leftoverMask == 0 else { return nil }
        return out
    }

    private static func value(of ascii: UInt8) -> UInt8? {
        switch ascii {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): ascii - UInt8(ascii: "a")
        case UInt8(ascii: "2")...UInt8(ascii: "7"): ascii - UInt8(ascii: "2") + 26
        default: nil
        }
    }
}
