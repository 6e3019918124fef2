import CSodium

/// An Ed25519 signing key. The secret lives in ``SecretBytes`` and is wiped when the key is
/// released; only ``withSeed(_:)`` exposes it, for writing key files.
public final class SigningKey: Sendable {
    public static let seedByteCount = 32

    /// libsodium's secret key: the 32-byte seed followed by the 32-byte public key.
    private let secretKey: SecretBytes
    public let publicKey: PublicKey

    /// A fresh key from the operating system's CSPRNG.
    public init() {
        Sodium.ensureInitialized()
        var publicBytes = [UInt8](repeating: 0, count: PublicKey.byteCount)
        secretKey = SecretBytes(count: Int(crypto_sign_secretkeybytes())) { secret in
            Self.fill(secret) { _ = crypto_sign_keypair(&publicBytes, $0) }
        }
        publicKey = PublicKey(checkedBytes: publicBytes)
    }

    /// The key determined by a 32-byte seed (RFC 8032's private key).
    public convenience init(seed: some Collection<UInt8>) throws(CryptoError) {
        guard seed.count == Self.seedByteCount else {
            throw .wrongLength(what: "signing key seed", expected: Self.seedByteCount, got: seed.count)
        }
        self.init(seedSecret: SecretBytes(copying: seed))
    }

    /// The key for a seed already held in secret memory; `seedSecret` must hold exactly 32 bytes.
    init(seedSecret: SecretBytes) {
        precondition(seedSecret.count == Self.seedByteCount, "signing key seed must be \(Self.seedByteCount) bytes")
        Sodium.ensureInitialized()
        var publicBytes = [UInt8](repeating: 0, count: PublicKey.byteCount)
        secretKey = SecretBytes(count: Int(crypto_sign_secretkeybytes())) { secret in
            seedSecret.withBytePointer { seedPointer in
                Self.fill(secret) { _ = crypto_sign_seed_keypair(&publicBytes, $0, seedPointer) }
            }
        }
        publicKey = PublicKey(checkedBytes: publicBytes)
    }

    /// A detached Ed25519 signature of `message`. Deterministic: same key and message, same signature.
    public func sign(_ message: [UInt8]) -> Signature {
        Sodium.ensureInitialized()
        var signature = [UInt8](repeating: 0, count: Signature.byteCount)
        secretKey.withBytePointer { secret in
            withNonNullPointer(to: message) { messagePointer, messageCount in
                _ = crypto_sign_detached(&signature, nil, messagePointer, UInt64(messageCount), secret)
            }
        }
        VerificationMemo.remember(key: publicKey.bytes, signature: signature, message: message)
        return Signature(checkedBytes: signature)
    }

    /// Calls `body` with the 32-byte seed. Do not copy it anywhere that outlives `body` unwiped.
    public func withSeed<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secretKey.withUnsafeBytes { secret in
            try body(UnsafeRawBufferPointer(rebasing: secret.prefix(Self.seedByteCount)))
        }
    }

    private static func fill(_ buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeMutablePointer<UInt8>) -> Void) {
        guard let base = buffer.baseAddress else { return }
        body(base.assumingMemoryBound(to: UInt8.self))
    }
}
