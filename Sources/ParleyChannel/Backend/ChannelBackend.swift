import ParleyCrypto
import ParleyWire

/// Which settlement backend a channel's states are signed for. Part of the parameters, so
/// of the channel id: a channel never changes backend.
public enum ChannelBackendID: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Ed25519 over Parley's canonical encoding: the embedded chain and the devchain.
    case ed25519 = 1
    /// secp256k1 over an EIP-712 digest of the ABI-encoded state: what an EVM contract checks.
    case ethereum = 2

    public var description: String {
        switch self {
        case .ed25519: "ed25519"
        case .ethereum: "ethereum"
        }
    }

    /// The backend itself. An existential at this one edge: each call is a signature or a
    /// hash, which costs far more than the dispatch (`parley bench` measures both backends).
    public var backend: any ChannelBackend {
        switch self {
        case .ed25519: Ed25519Backend()
        case .ethereum: EthereumBackend()
        }
    }
}

/// Everything a channel's parameters fix, before the id is derived from them.
public struct ChannelTerms: Hashable, Sendable {
    /// Transport identities in seat order: who the node talks to for each seat.
    public var participants: [PublicKey]
    /// Settlement addresses in seat order: whose signature the chain accepts for each seat.
    public var signers: [SettlementAddress]
    public var nonce: [UInt8]
    public var challengeDuration: UInt64
    public var appID: AppID
    public var domain: SettlementDomain
}

/// A settlement backend: how a channel's participants are addressed, how its id is derived,
/// and how its states are hashed, signed and checked.
///
/// Nothing above the channel layer knows which backend a channel uses: the engine, journal,
/// watcher and node call ``ChannelParams/signingDigest(of:)``, ``ChannelParams/isValid(_:of:by:)``
/// and sign through a ``StateSigner``, and the params hold the backend.
public protocol ChannelBackend: Sendable {
    var id: ChannelBackendID { get }

    /// Refuses terms this backend cannot settle (for example a domain without a contract
    /// address on Ethereum).
    func validate(_ terms: ChannelTerms) throws(WireError)

    /// The channel id: bound to every term, including the settlement domain.
    func channelID(of terms: ChannelTerms, canonicalBytes: [UInt8]) -> ChannelID

    /// The 32 bytes each participant signs for `state` in a channel on `domain`.
    func signingDigest(of state: ChannelState, domain: SettlementDomain) -> Digest

    /// Whether `signature` of `digest` was made by `signer`'s key.
    func isValid(_ signature: StateSignature, of digest: Digest, by signer: SettlementAddress) -> Bool

    /// The most app data a state may carry and still be registered on this backend's
    /// chains. The engine signs nothing longer: a newest state the chain cannot take could
    /// never refute an older one.
    var maxAppDataBytes: Int { get }
}

extension ChannelBackend {
    public var maxAppDataBytes: Int { WireLimits.maxAppDataBytes }
}
