import CSodium

/// An ephemeral X25519 key for one key agreement (RFC 7748), such as one transport handshake.
///
/// The secret lives in ``SecretBytes`` and is wiped when the last reference goes away, so
/// dropping the key after ``sharedSecret(with:)`` is what gives forward secrecy. It is never
/// written anywhere and cannot be read back out.
public final class AgreementKey: Sendable {
    public static let secretByteCount = 32

    private let secret: SecretBytes
    public let publicKey: AgreementPublicKey

    /// A fresh key from the operating system's CSPRNG.
    public convenience init() {
        Sodium.ensureInitialized()
        let secret = SecretBytes(count: Self.secretByteCount) { buffer in
            if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
        }
        self.init(checkedSecret: secret)
    }

    /// The key with a given 32-byte secret, for test vectors. Real sessions use ``init()``.
    public convenience init(secret: some Collection<UInt8>) throws(CryptoError) {
        guard secret.count == Self.secretByteCount else {
            throw .wrongLength(what: "agreement key secret", expected: Self.secretByteCount, got: secret.count)
        }
        self.init(checkedSecret: SecretBytes(copying: secret))
    }

    private init(checkedSecret secret: SecretBytes) {
        Sodium.ensureInitialized()
        var publicBytes = [UInt8](repeating: 0, count: AgreementPublicKey.byteCount)
        // X25519 clamps every secret to a multiple of the cofactor with the top bit set, so
        // the base-point multiple is never the identity and this cannot fail.
        _ = secret.withBytePointer { crypto_scalarmult_base(&publicBytes, $0) }
        self.secret = secret
        publicKey = AgreementPublicKey(checkedBytes: publicBytes)
    }

    /// The X25519 shared secret with `peer`, in secret memory.
    ///
    /// Throws ``CryptoError/weakKeyAgreement`` when the result is all zeros, which happens
    /// exactly when `peer` is a low-order point: a peer (or a man in the middle) that sends one
    /// would otherwise force a secret everybody knows. The raw result is not uniformly random;
    /// hash it with the transcript before using it as a key (``AEAD/deriveKey(_:from:transcript:)``).
    public func sharedSecret(with peer: AgreementPublicKey) throws(CryptoError) -> SecretBytes {
        Sodium.ensureInitialized()
        return try SecretBytes(count: AgreementPublicKey.byteCount) { (out) throws(CryptoError) in
            guard let outBase = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
                throw .weakKeyAgreement
            }
            let result = secret.withBytePointer { crypto_scalarmult(outBase, $0, peer.bytes) }
            guard result == 0 else { throw .weakKeyAgreement }
        }
    }
}

/// The public half of an ``AgreementKey``: 32 bytes, sent to the peer in the clear.
///
/// Any 32 bytes are accepted here; a low-order point is caught when it is used, by
/// ``AgreementKey/sharedSecret(with:)``.
public struct AgreementPublicKey: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "agreement public key", expected: Self.byteCount, got: bytes.count)
        }
        self.bytes = bytes
    }

    /// For callers that already hold exactly ``byteCount`` bytes from libsodium.
    init(checkedBytes bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "agreement public key must be \(Self.byteCount) bytes")
        self.bytes = bytes
    }

    /// Lowercase hexadecimal, 64 digits.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }
}
