/// Why a key, signature, digest or encoding was refused.
public enum CryptoError: Error, Equatable, CustomStringConvertible {
    /// A fixed-size value had the wrong number of bytes.
    case wrongLength(what: String, expected: Int, got: Int)
    /// Text that should be hexadecimal was not: a non-hex character or an odd number of digits.
    case invalidHex(what: String)
    /// Text is not a human-form public key (`pk1…`); the associated value says why.
    case badHumanForm(String)
    /// A human-form public key is well formed but its checksum does not match: a typo.
    case badChecksum
    /// An X25519 key agreement produced the all-zero secret: the peer's public key is a
    /// low-order point, chosen so the "shared" secret is predictable to anyone.
    case weakKeyAgreement
    /// AEAD decryption failed: the ciphertext, nonce, key or associated data is not the one
    /// the message was sealed with. Nothing is learned about which.
    case authenticationFailed
    /// Text is not an Ethereum address; the associated value says why.
    case badEthereumAddress(String)
    /// A signature's bytes cannot be a valid signature at all; the associated value says why.
    case malformedSignature(String)
    /// Secret key bytes are not a usable key; the associated value says why.
    case invalidSecretKey(String)

    public var description: String {
        switch self {
        case let .wrongLength(what, expected, got):
            "\(what) must be exactly \(expected) bytes, got \(got)"
        case let .invalidHex(what):
            "\(what) is not valid hexadecimal: use only the digits 0-9 and a-f, two per byte"
        case let .badHumanForm(reason):
            "not a Parley public key: \(reason)"
        case .badChecksum:
            "the public key's checksum does not match, so it was mistyped or altered; copy it again from its source"
        case .weakKeyAgreement:
            "the peer's ephemeral key is a low-order point that gives a predictable shared secret; refuse the peer"
        case .authenticationFailed:
            "the message does not authenticate: it was altered, replayed, or sealed under a different key or nonce"
        case let .badEthereumAddress(reason):
            "not an Ethereum address: \(reason)"
        case let .malformedSignature(reason):
            "not a valid signature: \(reason)"
        case let .invalidSecretKey(reason):
            "not a usable secret key: \(reason)"
        }
    }
}
