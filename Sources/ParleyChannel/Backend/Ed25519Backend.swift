import ParleyCrypto
import ParleyWire

/// Today's backend for Parley's own chains (the embedded `LocalChain` and the devchain):
/// each participant signs with its transport identity, an Ed25519 key, over BLAKE2b-256 of
/// the state's canonical encoding; the channel id is BLAKE2b-256 of the canonical params,
/// settlement domain included.
public struct Ed25519Backend: ChannelBackend {
    public init() {}

    public var id: ChannelBackendID { .ed25519 }

    public func validate(_ terms: ChannelTerms) throws(WireError) {
        for (seat, signer) in terms.signers.enumerated() {
            guard case let .ed25519(key) = signer, key == terms.participants[seat] else {
                throw .invalidValue(
                    field: "signers", reason: "on the Ed25519 backend each seat signs with its own identity key")
            }
        }
    }

    public func channelID(of terms: ChannelTerms, canonicalBytes: [UInt8]) -> ChannelID {
        ChannelID(digest: Blake2b.hash256(domain: .channelID, canonicalBytes))
    }

    public func signingDigest(of state: ChannelState, domain: SettlementDomain) -> Digest {
        Blake2b.hash256(domain: .stateSignature, state.wireBytes)
    }

    public func isValid(_ signature: StateSignature, of digest: Digest, by signer: SettlementAddress) -> Bool {
        guard case let .ed25519(signature) = signature, case let .ed25519(key) = signer else { return false }
        return key.isValidSignature(signature, for: digest.bytes)
    }
}
