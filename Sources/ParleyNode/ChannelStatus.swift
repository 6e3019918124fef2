import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire

/// A channel as the node sees it right now.
public struct ChannelStatus: Sendable, Equatable {
    public let id: ChannelID
    public let peer: PublicKey
    public let me: ParticipantIndex
    /// The latest fully-signed state (for an opener still waiting for the accept: version 0, our signature only).
    public let latest: SignedState
    public let phase: Phase
    public let isFunded: Bool
    /// What made the channel closing (the first cause; nil while it is not closing).
    public let closingReason: ClosingReason?
    /// A final state is signed or a dispute is on chain: no more updates.
    public var isClosing: Bool { closingReason != nil }
    public let isClosed: Bool
    public let isConnected: Bool

    /// Our balance in the latest state.
    public var myBalance: Amount { latest.state.allocation[me] }
    public var peerBalance: Amount { latest.state.allocation[me.peer] }
}

/// What turned a channel closing. A channel takes no more updates from then on; the
/// reason is the first cause seen (later ones, such as the chain event that follows our
/// own exit, do not replace it).
public enum ClosingReason: Sendable, Equatable, CustomStringConvertible {
    /// A final state is fully signed (cooperative close).
    case finalState
    /// Someone registered `version` on chain.
    case registeredOnChain(version: UInt64)
    /// A game's registered state advanced on chain to `version`.
    case progressedOnChain(version: UInt64)
    /// Our watcher is leaving the channel on chain for `ExitReason`.
    case exiting(ExitReason)
    /// The peer did not answer a proposal, or did not move, in time, and the policy
    /// disputes on silence.
    case peerUnresponsive
    /// The journal failed; the channel is frozen at its last durable state.
    case journalStopped
    /// The journal already holds a dispute for this channel (found at start-up).
    case disputeInJournal
    /// Nothing of ours is left in the channel.
    case closed

    public var description: String {
        switch self {
        case .finalState: "a final state is signed"
        case let .registeredOnChain(version): "version \(version) is registered on chain"
        case let .progressedOnChain(version): "the game moved on chain to version \(version)"
        case let .exiting(reason): "our watcher is exiting on chain: \(reason.explanation)"
        case .peerUnresponsive: "the peer did not answer in time"
        case .journalStopped: "the journal stopped"
        case .disputeInJournal: "the journal holds a dispute"
        case .closed: "the channel is closed"
        }
    }
}
