/// A 32-byte BLAKE2b-256 digest, produced by ``Blake2b``.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "digest", expected: Self.byteCount, got: bytes.count)
        }
        self.bytes = bytes
    }

    /// For callers that already hold exactly ``byteCount`` bytes from libsodium.
    init(checkedBytes bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "digest must be \(Self.byteCount) bytes")
        self.bytes = bytes
    }

    /// Lowercase hexadecimal, 64 digits.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }

    /// Feeds the 32 bytes to the hasher in one call. (The derived conformance hashes an
    /// array element by element; channel IDs are dictionary keys on every update's path.)
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (lhs: Digest, rhs: Digest) -> Bool {
        lhs.bytes == rhs.bytes
    }
}

/// A domain-separation tag: hashes made for different purposes can never be confused,
/// even over identical data.
///
/// Tags are compile-time constants (`StaticString`) so they cannot be built from input.
/// Convention: `"parley/<purpose>/v<version>"`.
public struct DigestDomain: Hashable, Sendable {
    /// Printable ASCII, 1...``maxTagBytes`` bytes, so its length fits the one-byte prefix.
    public let tag: String

    static let maxTagBytes = 255

    public init(_ tag: StaticString) {
        let text = tag.description
        precondition(
            (1...Self.maxTagBytes).contains(text.utf8.count),
            "digest domain tag must be 1...\(Self.maxTagBytes) bytes: \(text)")
        precondition(text.utf8.allSatisfy { (0x20...0x7e).contains($0) }, "digest domain tag must be printable ASCII: \(text)")
        self.tag = text
    }

    /// Derives a channel's identifier from its parameters.
    public static let channelID = DigestDomain("parley/channel-id/v3")
    /// The digest of a channel state that participants sign. Version 2: 128-bit amounts.
    public static let stateSignature = DigestDomain("parley/state/v2")
    /// Derives the secp256k1 settlement key (an Ethereum account) from an identity's seed.
    public static let settlementKey = DigestDomain("parley/settlement-key/secp256k1/v1")
    /// The checksum in a public key's human form.
    public static let keyChecksum = DigestDomain("parley/key-checksum/v1")
    /// The transport handshake's transcript hashes: what each side signs, and what the
    /// session keys are bound to.
    public static let handshakeTranscript = DigestDomain("parley/handshake/v1")
    /// The session key for frames the dialer sends and the listener receives.
    public static let sessionKeyDialerToListener = DigestDomain("parley/session/d2l/v1")
    /// The session key for frames the listener sends and the dialer receives.
    public static let sessionKeyListenerToDialer = DigestDomain("parley/session/l2d/v1")
}
