import ParleyChannel
import ParleyCrypto

extension ChannelState {
    /// Whether `signature` is `key`'s signature of this state on the Ed25519 backend, the
    /// backend the simulator's channels use (the embedded chain's). Mallory and the oracle
    /// ask this of states whose channel they may not know.
    func isSigned(by key: PublicKey, with signature: StateSignature) -> Bool {
        let backend = Ed25519Backend()
        return backend.isValid(signature, of: backend.signingDigest(of: self, domain: .embedded), by: .ed25519(key))
    }
}
