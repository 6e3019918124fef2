/// A detached Ed25519 signature.
public struct Signature: Hashable, Sendable {
    public static let byteCount = 64

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "signature", expected: Self.byteCount, got: bytes.count)
        }
        self.bytes = bytes
    }

    /// For callers that already hold exactly ``byteCount`` bytes from libsodium.
    init(checkedBytes bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "signature must be \(Self.byteCount) bytes")
        self.bytes = bytes
    }
}
