import ParleyChannel
import ParleyCrypto

/// The node's two signing keys and which one a channel's states need.
///
/// Both come from the identity's seed: the Ed25519 identity signs Ed25519-backend channels
/// (its public key is the seat's signer), and the derived secp256k1 key signs Ethereum ones.
struct NodeSigners: Sendable {
    let identity: SigningKey
    let ethereum: EthereumSigningKey

    init(identity: SigningKey) {
        self.identity = identity
        ethereum = identity.settlementKey
    }

    /// The key for `params`' backend: `SigningKey.stateSigner(for:)` with the derived key kept
    /// instead of derived again per channel. The engine still refuses to sign unless the params
    /// name that key's address for our seat.
    func signer(for params: ChannelParams) -> any StateSigner {
        switch params.backendID {
        case .ed25519: identity
        case .ethereum: ethereum
        }
    }

    /// The signers of a channel we open: ours and the peer's under the peer signer's backend,
    /// or `nil` (the identities themselves, Ed25519) when no peer signer is given.
    func seats(peerSigner: SettlementAddress?) -> [SettlementAddress]? {
        guard let peerSigner else { return nil }
        switch peerSigner.backend {
        case .ed25519: return [identity.settlementAddress, peerSigner]
        case .ethereum: return [ethereum.settlementAddress, peerSigner]
        }
    }
}
