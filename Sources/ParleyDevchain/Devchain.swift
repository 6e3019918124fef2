import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport

/// The devchain daemon and its client: see Docs/Settlement.md, "The devchain daemon".
///
/// The daemon's transport identity is **well known**: its signing key is derived
/// from a fixed public seed, so anyone can dial `devchain://HOST:PORT` without
/// being told a key. This authenticates every *client* to the chain (the
/// handshake proves the client's key, and that key is the `caller` of every
/// transaction it submits, which is what a transaction signature does on a real
/// chain) but not the chain to its clients: anyone can impersonate a devchain.
/// That is fine for a development chain and wrong for anything holding value; and since
/// the daemon's key makes its holder the operator (who alone may mint and move the clock,
/// see `DevchainServer`), on the well-known key every client is the operator. A daemon
/// started with `--identity KEYFILE` answers with that key instead; clients then pin it
/// with `devchain://pk1…@HOST:PORT`, which does authenticate the chain (a client refuses a
/// daemon that proves another key with `DevchainError.wrongDaemonKey`), and only the key
/// file's holder is the operator.
public enum Devchain {
    /// The public seed the well-known identity derives from.
    public static let identitySeedDomain = DigestDomain("parley/devchain/v1")

    /// The daemon's signing key: `SigningKey(seed: Blake2b.hash256(domain: "parley/devchain/v1", []))`.
    /// Public on purpose; see the type's comment.
    public static let wellKnownIdentity: SigningKey = {
        let seed = Blake2b.hash256(domain: identitySeedDomain, []).bytes
        // A 32-byte seed is always accepted; the fallback only keeps this total.
        return (try? SigningKey(seed: seed)) ?? SigningKey()
    }()

    /// The key every devchain answers the handshake with.
    public static var wellKnownKey: PublicKey { wellKnownIdentity.publicKey }

    /// The URL scheme of devchain addresses: `devchain://127.0.0.1:7545`.
    public static let scheme = "devchain://"

    /// Parses `devchain://HOST:PORT` (or a bare `HOST:PORT`) into a socket address.
    public static func address(_ text: String) throws(DevchainError) -> SocketAddress {
        try endpoint(text).address
    }

    /// Parses `devchain://HOST:PORT` (the daemon is expected to answer with `wellKnownKey`) or
    /// `devchain://pk1…@HOST:PORT` (a daemon started with `--identity`, pinned to that key).
    public static func endpoint(_ text: String) throws(DevchainError) -> (address: SocketAddress, key: PublicKey) {
        var rest = text.hasPrefix(scheme) ? String(text.dropFirst(scheme.count)) : text
        var key = wellKnownKey
        if let at = rest.firstIndex(of: "@") {
            do {
                key = try PublicKey(humanForm: String(rest[..<at]))
            } catch {
                throw .invalidAddress(text, "the key before @ is not a pk1… public key: \(error)")
            }
            rest = String(rest[rest.index(after: at)...])
        }
        do {
            return (try SocketAddress(rest), key)
        } catch {
            throw .invalidAddress(text, "\(error)")
        }
    }
}
