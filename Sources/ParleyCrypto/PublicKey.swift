import CSodium

/// An Ed25519 public key: who signed a state, and who a channel is with.
///
/// Any 32 bytes are accepted; bytes that are not a valid curve point simply never verify a
/// signature. Ordering is lexicographic on the bytes, which gives two peers the same canonical
/// order for a pair of keys without negotiation.
public struct PublicKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let byteCount = 32

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "public key", expected: Self.byteCount, got: bytes.count)
        }
        self.bytes = bytes
    }

    /// Parses 64 hexadecimal digits, upper or lower case.
    public init(hex: String) throws(CryptoError) {
        guard let bytes = Hex.decode(hex) else { throw .invalidHex(what: "public key") }
        try self.init(bytes: bytes)
    }

    /// For callers that already hold exactly ``byteCount`` bytes from libsodium.
    init(checkedBytes bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "public key must be \(Self.byteCount) bytes")
        self.bytes = bytes
    }

    /// Lowercase hexadecimal, 64 digits.
    public var hex: String { Hex.encode(bytes) }

    /// The first 8 hex digits: enough to tell keys apart in logs, not to identify one securely.
    public var shortID: String { String(hex.prefix(8)) }

    /// The human form (`pk1…`), which carries a checksum against typos.
    public var description: String { humanForm }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    public func isValidSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
        VerificationMemo.verify(key: bytes, signature: signature.bytes, message: message) {
            Sodium.ensureInitialized()
            return withNonNullPointer(to: message) { messagePointer, messageCount in
                crypto_sign_verify_detached(signature.bytes, messagePointer, UInt64(messageCount), bytes) == 0
            }
        }
    }

    public static func < (lhs: PublicKey, rhs: PublicKey) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
