import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire

/// Why a node operation failed.
public enum NodeError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownChannel(ChannelID)
    /// The channel is closing or closed (a final state, or a dispute on chain); `because`
    /// says what started it.
    case channelClosing(ChannelID, because: ClosingReason)
    /// The channel is over: concluded on chain and paid out. Nothing more can be done on it.
    case channelClosed(ChannelID)
    /// `open`: our chain account holds less than the deposit asked of us; nothing was signed.
    case chainBalanceTooLow(have: Amount, need: Amount)
    /// The journal directory belongs to another node's key (its `identity` file or its
    /// channels say so): opening it would sign for channels this key is not in.
    case journalOfAnotherKey(directory: String, journal: PublicKey, ours: PublicKey)
    /// The chain does not show the channel funded yet.
    case notFunded(ChannelID)
    /// Our proposal went unanswered for the proposal timeout. The session was dropped; if
    /// the peer comes back before the channel settles, the update may still commit.
    case peerUnresponsive(ChannelID, after: Duration)
    /// The peer could not be reached to open a channel.
    case peerUnreachable(String)
    /// The peer did not accept the channel within the time given.
    case openTimedOut(ChannelID)
    /// The engine refused the update, or the peer rejected it.
    case updateFailed(ChannelID, UpdateFailure)
    case openRefused(OpenRejection)
    case journal(JournalError)
    /// The chain refused or could not be reached.
    case chain(SettlementError)
    case watcher(WatcherError)
    case invalidParameters(String)
    /// The node is shut down.
    case stopped

    public var description: String {
        switch self {
        case let .unknownChannel(id): "channel \(id.shortID) is not known to this node"
        case let .channelClosing(id, reason): "channel \(id.shortID) is closing (\(reason)); no more updates"
        case let .chainBalanceTooLow(have, need):
            "our chain account holds \(have), less than the deposit of \(need); nothing was signed (fund the account first)"
        case let .channelClosed(id): "channel \(id.shortID) is closed: it was settled on chain and takes no more commands"
        case let .journalOfAnotherKey(directory, journal, ours):
            "the journal \(directory) belongs to the key \(journal.humanForm), not to this node's key \(ours.humanForm): give the matching --key, or another --journal for this key"
        case let .notFunded(id): "channel \(id.shortID) is not funded on chain yet"
        case let .peerUnresponsive(id, after):
            "the peer did not answer on channel \(id.shortID) within \(after); the connection was dropped"
        case let .peerUnreachable(why): "could not reach the peer: \(why)"
        case let .openTimedOut(id): "the peer did not accept channel \(id.shortID) in time"
        case let .updateFailed(id, failure): "update on channel \(id.shortID) failed: \(failure)"
        case let .openRefused(why): "cannot open the channel: \(why)"
        case let .journal(error): "journal: \(error)"
        case let .chain(error): "chain: \(error)"
        case let .watcher(error): "\(error)"
        case let .invalidParameters(why): "invalid parameters: \(why)"
        case .stopped: "the node is shut down"
        }
    }
}
