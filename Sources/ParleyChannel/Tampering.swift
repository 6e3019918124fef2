/// A deliberately malformed update, for drills (`Node.sendTampered` in ParleyNode). The receiving node
/// must reject each one and keep its state (Docs/Protocol.md invariant 6).
package enum Tampering: String, Sendable, CaseIterable {
    /// A one-unit payment whose signature is random bytes.
    case badSignature = "bad-signature"
    /// A properly signed state in which we take more than the channel holds.
    case overspend
    /// A properly signed one-unit payment two versions ahead.
    case versionSkip = "version-skip"
    /// A properly signed one-unit payment naming a channel that does not exist.
    case wrongChannel = "wrong-channel"
    /// An older committed state, proposed again.
    case replay
}
