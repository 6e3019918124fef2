/// A 20-byte Ethereum account address: the last 20 bytes of the Keccak-256 of the account's
/// uncompressed secp256k1 public key (without its `0x04` prefix).
///
/// Text is `0x` and 40 hex digits. ``description`` gives the EIP-55 checksummed form, and
/// ``init(hex:)`` checks the checksum of mixed-case input, so a mistyped address is refused
/// instead of sending money nowhere. All-lowercase or all-uppercase input carries no
/// checksum and is accepted as is, as every Ethereum tool does.
public struct EthereumAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let byteCount = 20

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "Ethereum address", expected: Self.byteCount, got: bytes.count)
        }
        self.bytes = bytes
    }

    /// Parses `0x` and 40 hex digits (the `0x` may be left out); mixed case must be a valid
    /// EIP-55 checksum.
    public init(hex text: String) throws(CryptoError) {
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : text
        guard digits.utf8.count == 2 * Self.byteCount, let bytes = Hex.decode(digits) else {
            throw .badEthereumAddress("expected 0x and 40 hexadecimal digits, got \"\(text)\"")
        }
        try self.init(bytes: bytes)
        let hasLower = digits.contains { $0.isLowercase }
        let hasUpper = digits.contains { $0.isUppercase }
        if hasLower, hasUpper, digits != Self.checksummedDigits(bytes) {
            throw .badEthereumAddress(
                "the EIP-55 checksum of \(text) does not match, so it was mistyped or altered; copy it again from its source")
        }
    }

    /// The address of an uncompressed public key given as its 64 coordinate bytes (x ‖ y).
    public init(publicKeyCoordinates coordinates: [UInt8]) throws(CryptoError) {
        guard coordinates.count == 64 else {
            throw .wrongLength(what: "secp256k1 public key coordinates", expected: 64, got: coordinates.count)
        }
        try self.init(bytes: Keccak256.hash(coordinates).bytes.suffix(Self.byteCount))
    }

    /// EIP-55: `0x` and 40 hex digits, where a letter is upper case when the matching nibble
    /// of the Keccak-256 of the lowercase digits is 8 or more.
    public var checksummed: String { "0x" + Self.checksummedDigits(bytes) }

    public var description: String { checksummed }

    /// The first 8 hex digits after `0x`, for logs.
    public var shortID: String { String(Hex.encode(bytes).prefix(8)) }

    public static func < (lhs: EthereumAddress, rhs: EthereumAddress) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    private static func checksummedDigits(_ bytes: [UInt8]) -> String {
        let lower = Hex.encode(bytes)
        let hash = Keccak256.hash(Array(lower.utf8)).bytes
        var out = ""
        out.reserveCapacity(lower.utf8.count)
        for (index, character) in lower.enumerated() {
            let nibble = index % 2 == 0 ? hash[index / 2] >> 4 : hash[index / 2] & 0x0f
            out.append(character.isLetter && nibble >= 8 ? Character(character.uppercased()) : character)
        }
        return out
    }
}
