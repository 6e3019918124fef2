import CSecp256k1
import CSodium

/// libsecp256k1 (Debian's libsecp256k1-dev, built with its recovery module): the curve
/// Ethereum accounts sign with.
///
/// One signing context for the process, randomized once against timing side channels.
/// Signing and recovery only read it, which the library documents as safe from many threads.
enum Secp256k1 {
    /// The curve order n, big-endian; a low-s signature has s ≤ n/2.
    static let halfOrder: [UInt8] = [
        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
    ]

    static var context: OpaquePointer { sharedContext.pointer }

    /// The 64 coordinate bytes (x ‖ y) of a public key, as Ethereum hashes them.
    static func coordinates(of key: secp256k1_pubkey) -> [UInt8] {
        var key = key
        var out = [UInt8](repeating: 0, count: 65)
        var length = 65
        _ = secp256k1_ec_pubkey_serialize(context, &out, &length, &key, UInt32(SECP256K1_EC_UNCOMPRESSED))
        return Array(out[1...])
    }
}

/// Holds the process's context. `@unchecked` because the pointer is written once, in `init`,
/// before anyone else sees it, and only read after.
private final class SharedContext: @unchecked Sendable {
    let pointer: OpaquePointer

    init() {
        guard let context = secp256k1_context_create(UInt32(SECP256K1_CONTEXT_NONE)) else {
            preconditionFailure("libsecp256k1 could not allocate a context")
        }
        let seed = SecureRandom.bytes(32)
        _ = secp256k1_context_randomize(context, seed)
        pointer = context
    }
}

private let sharedContext = SharedContext()

/// A 65-byte recoverable ECDSA signature, `r ‖ s ‖ v`, as Ethereum's `ecrecover` takes it:
/// `v` is 27 or 28, and `s` is in the lower half of the curve order (EIP-2), so each
/// message and key have exactly one valid signature and a third party cannot make a second.
public struct RecoverableSignature: Hashable, Sendable {
    public static let byteCount = 65

    /// Always exactly ``byteCount`` bytes.
    public let bytes: [UInt8]

    /// Checks the length, `v`, and that `s` is low; it does not check the signature against
    /// any message (see ``recoverSigner(of:)``).
    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard bytes.count == Self.byteCount else {
            throw .wrongLength(what: "secp256k1 signature", expected: Self.byteCount, got: bytes.count)
        }
        guard bytes[64] == 27 || bytes[64] == 28 else {
            throw .malformedSignature("v must be 27 or 28, got \(bytes[64])")
        }
        guard !Secp256k1.halfOrder.lexicographicallyPrecedes(bytes[32..<64]) else {
            throw .malformedSignature("s is in the upper half of the curve order (EIP-2 forbids it)")
        }
        self.bytes = bytes
    }

    init(checkedBytes bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "secp256k1 signature must be \(Self.byteCount) bytes")
        self.bytes = bytes
    }

    /// The address whose key made this signature of `digest`, or `nil` when no key did
    /// (r or s out of range, or no curve point for r).
    public func recoverSigner(of digest: Digest) -> EthereumAddress? {
        var recoverable = secp256k1_ecdsa_recoverable_signature()
        let recoveryID = Int32(bytes[64]) - 27
        guard secp256k1_ecdsa_recoverable_signature_parse_compact(Secp256k1.context, &recoverable, bytes, recoveryID) == 1
        else { return nil }
        var key = secp256k1_pubkey()
        guard secp256k1_ecdsa_recover(Secp256k1.context, &key, &recoverable, digest.bytes) == 1 else { return nil }
        return try? EthereumAddress(publicKeyCoordinates: Secp256k1.coordinates(of: key))
    }
}

/// A secp256k1 secret key: an Ethereum account. The 32-byte secret lives in ``SecretBytes``
/// and is wiped when the key is released.
public final class EthereumSigningKey: Sendable {
    public static let secretByteCount = 32

    private let secret: SecretBytes
    public let address: EthereumAddress

    /// A fresh key from the operating system's CSPRNG.
    public convenience init() {
        while true {
            // Drawn straight into secret memory, never into an ordinary buffer.
            let candidate = SecretBytes(count: Self.secretByteCount) { buffer in
                if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
            }
            if let key = try? EthereumSigningKey(secret: candidate) {
                self.init(copying: key)
                return
            }
        }
    }

    /// The key for 32 secret bytes, big-endian; refused when they are zero or not below the
    /// curve order.
    public convenience init(secretBytes: some Collection<UInt8>) throws(CryptoError) {
        guard secretBytes.count == Self.secretByteCount else {
            throw .wrongLength(what: "secp256k1 secret key", expected: Self.secretByteCount, got: secretBytes.count)
        }
        try self.init(secret: SecretBytes(copying: secretBytes))
    }

    /// The key for a secret already held in secret memory.
    public init(secret: SecretBytes) throws(CryptoError) {
        guard secret.count == Self.secretByteCount else {
            throw .wrongLength(what: "secp256k1 secret key", expected: Self.secretByteCount, got: secret.count)
        }
        var key = secp256k1_pubkey()
        let made = secret.withBytePointer { pointer in
            secp256k1_ec_seckey_verify(Secp256k1.context, pointer) == 1
                && secp256k1_ec_pubkey_create(Secp256k1.context, &key, pointer) == 1
        }
        guard made else { throw .invalidSecretKey("a secp256k1 secret key must be non-zero and below the curve order") }
        self.secret = secret
        address = try EthereumAddress(publicKeyCoordinates: Secp256k1.coordinates(of: key))
    }

    private init(copying other: EthereumSigningKey) {
        secret = other.secret
        address = other.address
    }

    /// Signs a 32-byte digest: RFC 6979 deterministic nonces, low s, `v` = 27 + recovery id.
    public func sign(_ digest: Digest) -> RecoverableSignature {
        var recoverable = secp256k1_ecdsa_recoverable_signature()
        let signed = secret.withBytePointer { pointer in
            secp256k1_ecdsa_sign_recoverable(Secp256k1.context, &recoverable, digest.bytes, pointer, nil, nil)
        }
        // A valid key (checked in init) and a 32-byte digest always sign.
        precondition(signed == 1, "libsecp256k1 refused to sign with a verified key")
        var out = [UInt8](repeating: 0, count: RecoverableSignature.byteCount)
        var recoveryID: Int32 = 0
        _ = secp256k1_ecdsa_recoverable_signature_serialize_compact(Secp256k1.context, &out, &recoveryID, &recoverable)
        out[64] = UInt8(27 + recoveryID)
        return RecoverableSignature(checkedBytes: out)
    }

    /// Calls `body` with the 32 secret bytes. Do not copy them anywhere that outlives `body` unwiped.
    public func withSecret<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secret.withUnsafeBytes { try body($0) }
    }
}
