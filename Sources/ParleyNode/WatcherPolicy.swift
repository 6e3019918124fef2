import ParleyChannel
import ParleyJournal
import ParleySettlement
import ParleyWire

/// When the watcher acts on its own. The defaults are the safe choice for real money:
/// exit through the chain when the peer stops answering, but give a dropped connection
/// time to come back first.
public struct WatcherPolicy: Sendable {
    /// Exit through the chain on our own when the peer is silent (a proposal unanswered,
    /// or disconnected beyond `disconnectGrace` while we have funds in the channel).
    /// When false, silence is only reported and `dispute` is up to the application.
    public var disputeOnSilence: Bool
    /// How long the peer may stay disconnected, while we have funds in the channel,
    /// before we register our latest state.
    public var disconnectGrace: Duration
    /// How long `fund` waits for the other side's deposit before taking ours back.
    /// Separate from the challenge duration: it is wall-clock time on our side.
    public var fundingTimeout: Duration
    /// How often chain time is read while a challenge window we wait on is open.
    public var clockPollInterval: Duration
    /// How long to wait before retrying after the chain could not be reached.
    public var retryDelay: Duration

    public static let defaultDisconnectGrace: Duration = .seconds(300)
    public static let defaultFundingTimeout: Duration = .seconds(600)
    public static let defaultClockPollInterval: Duration = .seconds(1)
    public static let defaultRetryDelay: Duration = .milliseconds(500)

    public init(
        disputeOnSilence: Bool = true,
        disconnectGrace: Duration = defaultDisconnectGrace,
        fundingTimeout: Duration = defaultFundingTimeout,
        clockPollInterval: Duration = defaultClockPollInterval,
        retryDelay: Duration = defaultRetryDelay
    ) {
        self.disputeOnSilence = disputeOnSilence
        self.disconnectGrace = disconnectGrace
        self.fundingTimeout = fundingTimeout
        // A zero interval would turn the waits into busy loops.
        self.clockPollInterval = max(clockPollInterval, .milliseconds(1))
        self.retryDelay = max(retryDelay, .milliseconds(1))
    }
}

/// Why the watcher registered a state of its own (journaled before it acts: `Journal`'s
/// `exitDecided` record).
public typealias ExitReason = ParleyJournal.ExitReason

/// What the watcher saw on chain and did about it, in order.
public enum WatcherEvent: Sendable, Equatable {
    /// The chain shows the channel funded: both deposits match the opening allocation.
    case funded(ChannelID)
    /// Someone (`by`) registered `version`; the window closes at `deadline`.
    case registered(ChannelID, version: UInt64, deadline: ChainTime, by: ParticipantIndex)
    /// `mover` advanced the registered state on chain by one move (`progress`); a fresh window
    /// closes at `deadline`.
    case progressed(ChannelID, version: UInt64, deadline: ChainTime, mover: ParticipantIndex)
    /// We answered an older registration with our newer state (invariant 4).
    case refuted(ChannelID, stale: UInt64, with: UInt64)
    /// We registered our latest state to leave the channel on our own (invariant 5).
    case exitStarted(ChannelID, version: UInt64, reason: ExitReason)
    /// The peer is silent; with `disputeOnSilence` an exit follows.
    case peerSilent(ChannelID)
    /// The payout is fixed at `allocation`, from state `version`.
    case concluded(ChannelID, version: UInt64, allocation: Allocation)
    /// Our payout arrived in our account.
    case withdrawn(ChannelID, amount: Amount)
    /// Nothing of ours is left in the channel; it is closed in the journal.
    case closed(ChannelID)
    /// The channel was never funded (the funding timeout passed, or our deposit could not be
    /// made) and is given up: our deposit, if it went in, is taken back, then `closed`.
    case abandoned(ChannelID)
    /// A chain call or a journal write failed; the watcher retries after `retryDelay`.
    case failed(ChannelID, String)
}

/// Why `fund` or `waitUntilClosed` failed.
public enum WatcherError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The channel is not in this node's journal.
    case unknownChannel(ChannelID)
    /// Our key holds no seat in the channel.
    case notAParticipant(ChannelID)
    /// The other deposit did not arrive within `fundingTimeout`; ours was reclaimed.
    case fundingTimedOut(ChannelID, after: Duration)
    /// The chain refused or could not be reached.
    case chain(SettlementError)
    /// The chain's record of the channel is not what both journals agreed at version 0
    /// (other opening, other deposits, a dispute already open): it is never usable.
    case fundingMismatch(ChannelID, String)
    /// The watcher was stopped before the wait ended.
    case stopped

    public var description: String {
        switch self {
        case let .unknownChannel(id): "channel \(id.shortID) is not in this node's journal"
        case let .notAParticipant(id): "this node's key holds no seat in channel \(id.shortID)"
        case let .fundingTimedOut(id, after):
            "the other deposit to channel \(id.shortID) did not arrive within \(after); our deposit was reclaimed"
        case let .chain(error): "chain: \(error)"
        case let .fundingMismatch(id, why): "channel \(id.shortID) cannot be used: \(why)"
        case .stopped: "the watcher was stopped"
        }
    }
}
