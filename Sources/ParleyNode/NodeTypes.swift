import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire

/// How a ``Node`` behaves. The defaults are safe for money: every update is fsync'd,
/// a silent peer leads to an on-chain exit, and a channel is usable only once funded.
public struct NodePolicy: Sendable {
    /// When the watcher acts on its own, and how it paces chain calls.
    public var watcher: WatcherPolicy
    /// How long our proposal may go unanswered before the peer counts as unresponsive:
    /// the session is dropped, the waiting `pay`/`update` fails with `.peerUnresponsive`,
    /// and (with `watcher.disputeOnSilence`) the watcher starts the on-chain exit.
    public var proposalTimeout: Duration
    /// Challenge window, in seconds of chain time, for channels this node opens.
    public var challengeDuration: UInt64
    /// Whether journal appends are fsync'd (`.none` is for benchmarks and throwaway demos only).
    public var durability: Durability
    /// Session timing and buffer limits for peer connections.
    public var session: SessionConfig
    /// How fast a lost peer connection is redialled.
    public var redial: RetryPolicy
    /// Events kept for a slow reader of ``Node/events``; past this the oldest are dropped.
    public var eventBuffer: Int
    /// For apps with turns: how long the peer may take to move when it is its turn before it
    /// counts as silent (then, with `watcher.disputeOnSilence`, we register the latest state
    /// and the peer must move on chain or forfeit). `nil`: wait forever. Payments have no turns.
    public var turnTimeout: Duration?

    /// What a peer may ask of us when it proposes a channel, checked before the open
    /// handler is asked and before anything is journaled or deposited.
    public var opens: OpenLimits

    /// How late a channel timer (proposal, turn and wait deadlines) may fire: the node's one
    /// timer task wakes this often while any timer is armed. Timeouts are seconds, so the
    /// default 10 ms is invisible; the simulator uses a coarser one to run fewer wake-ups.
    public var timerResolution: Duration = .milliseconds(10)

    public static let defaultProposalTimeout: Duration = .seconds(10)
    public static let defaultEventBuffer = 65_536
    public static let defaultTurnTimeout: Duration = .seconds(30)

    public init(
        watcher: WatcherPolicy = WatcherPolicy(),
        proposalTimeout: Duration = NodePolicy.defaultProposalTimeout,
        challengeDuration: UInt64 = ChannelParams.defaultChallengeDuration,
        durability: Durability = .fsync,
        session: SessionConfig = SessionConfig(),
        redial: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(50), maxDelay: .seconds(2)),
        eventBuffer: Int = NodePolicy.defaultEventBuffer,
        turnTimeout: Duration? = NodePolicy.defaultTurnTimeout,
        opens: OpenLimits = OpenLimits()
    ) {
        self.opens = opens
        self.turnTimeout = turnTimeout.map { max($0, .milliseconds(1)) }
        self.watcher = watcher
        self.proposalTimeout = max(proposalTimeout, .milliseconds(1))
        self.challengeDuration = challengeDuration
        self.durability = durability
        self.session = session
        self.redial = redial
        self.eventBuffer = max(eventBuffer, 1)
    }
}

/// Bounds on the channels peers may open with us. A proposal outside them is refused
/// (``NodeEvent/error(_:_:)`` says why) before the open handler sees it, so a stranger
/// can neither make us lock up more than we chose, for longer than we chose, nor fill our
/// journal with channels.
public struct OpenLimits: Sendable, Equatable {
    /// The most we deposit into one channel a peer proposes.
    public var maxDeposit: Amount
    /// Challenge windows (seconds of chain time) we accept: too short and we may not answer
    /// a stale registration in time; too long and our deposit is locked for that long.
    public var challengeDurations: ClosedRange<UInt64>
    /// Channels one peer may have open with us at once (open or still settling).
    public var maxChannelsPerPeer: Int
    /// Channel proposals we take from one peer per minute (a sliding window); more are refused.
    public var maxOpensPerMinute: Int

    public static let defaultMaxDeposit: Amount = 1_000_000
    public static let defaultChallengeDurations: ClosedRange<UInt64> = 10...(7 * 24 * 3600)
    public static let defaultMaxChannelsPerPeer = 64
    public static let defaultMaxOpensPerMinute = 60
    /// No bounds beyond the protocol's own: for benchmarks and servers that vet peers themselves.
    public static let unlimited = OpenLimits(
        maxDeposit: .max, challengeDurations: ChannelParams.challengeDurationRange, maxChannelsPerPeer: .max,
        maxOpensPerMinute: .max)

    public init(
        maxDeposit: Amount = OpenLimits.defaultMaxDeposit,
        challengeDurations: ClosedRange<UInt64> = OpenLimits.defaultChallengeDurations,
        maxChannelsPerPeer: Int = OpenLimits.defaultMaxChannelsPerPeer,
        maxOpensPerMinute: Int = OpenLimits.defaultMaxOpensPerMinute
    ) {
        self.maxDeposit = maxDeposit
        self.challengeDurations = challengeDurations
        self.maxChannelsPerPeer = max(0, maxChannelsPerPeer)
        self.maxOpensPerMinute = max(0, maxOpensPerMinute)
    }

    /// Why `request` breaks these limits, or nil. `openChannels` is how many channels the
    /// peer has with us now, `recentOpens` how many it proposed in the last minute.
    func violation(_ request: OpenRequest, openChannels: Int, recentOpens: Int) -> String? {
        if request.myDeposit > maxDeposit {
            return "it asks us to deposit \(request.myDeposit), more than our limit of \(maxDeposit)"
        }
        if !challengeDurations.contains(request.challengeDuration) {
            return "its challenge window of \(request.challengeDuration) s is outside the \(challengeDurations) s we accept"
        }
        if openChannels >= maxChannelsPerPeer {
            return "the peer already has \(openChannels) channels with us, our limit"
        }
        if recentOpens >= maxOpensPerMinute {
            return "the peer proposed \(recentOpens) channels in the last minute, our limit"
        }
        return nil
    }
}

/// A peer's proposal, as the update handler sees it.
public struct IncomingUpdate: Sendable {
    public let channel: ChannelID
    /// Our seat in the channel.
    public let me: ParticipantIndex
    /// The latest fully-signed state.
    public let current: ChannelState
    /// What the peer proposes instead.
    public let proposed: ChannelState

    /// The peer's balance moves to us by this much (0 when it takes from us or keeps balances).
    public var amountToMe: Amount {
        let before = current.allocation[me]
        let after = proposed.allocation[me]
        return after > before ? after - before : 0
    }

    /// Whether our balance would shrink.
    public var takesFromMe: Bool { proposed.allocation[me] < current.allocation[me] }
}

/// Decides on the peer's proposals. Runs on the channel's own task; take as long as you
/// need (the peer waits up to its proposal timeout), but answer every call.
public typealias UpdateHandler = @Sendable (IncomingUpdate) async -> Decision

/// Our move in a game that continues on chain: given the registered state (our turn),
/// return the next state (one legal move; the version is set by the node), or nil to let
/// the window run out (we forfeit).
public typealias ChainMoveHandler = @Sendable (ChannelID, ChannelState) async -> ChannelState?

/// An update handler kept at its concrete type (see `Node.Switches`).
final class UpdateHandlerBox: Sendable {
    let handler: UpdateHandler
    init(_ handler: @escaping UpdateHandler) { self.handler = handler }
    func decide(_ update: IncomingUpdate) async -> Decision { await handler(update) }
}

/// A chain-move handler kept at its concrete type (see `Node.Switches`).
final class ChainMoveHandlerBox: Sendable {
    let handler: ChainMoveHandler
    init(_ handler: @escaping ChainMoveHandler) { self.handler = handler }
    func move(_ id: ChannelID, _ state: ChannelState) async -> ChannelState? { await handler(id, state) }
}

/// An open handler kept at its concrete type (see `Node.Switches`).
final class OpenHandlerBox: Sendable {
    let handler: OpenHandler
    init(_ handler: @escaping OpenHandler) { self.handler = handler }
    func decide(_ request: OpenRequest) async -> Bool { await handler(request) }
}

/// A peer asks to open a channel with us. Return `true` to accept (our deposit is made
/// from our chain account), `false` to ignore the proposal.
public typealias OpenHandler = @Sendable (OpenRequest) async -> Bool

/// A peer's channel proposal, as the open handler sees it.
public struct OpenRequest: Sendable {
    public let channel: ChannelID
    public let peer: PublicKey
    /// What the peer deposits.
    public let theirDeposit: Amount
    /// What we would deposit.
    public let myDeposit: Amount
    public let challengeDuration: UInt64
    public let appID: AppID
}

extension Node {
    /// The default update handler: accept any proposal that does not take from us and
    /// keeps the app data as it is — payments to us and a cooperative close. Everything
    /// else is declined with a reason the peer sees.
    public static let acceptPaymentsToMe: UpdateHandler = { update in
        if update.takesFromMe { return .reject("that takes from my balance") }
        if update.proposed.appData != update.current.appData { return .reject("app data changes need an app handler") }
        return .accept
    }

    /// The default open handler: accept payment channels (their deposit and ours come
    /// from the proposal; our share is deposited from our chain account).
    public static let acceptPaymentChannels: OpenHandler = { request in request.appID == .payment }
}

/// What a node reports, in order per channel. Read ``Node/events`` to follow them.
public enum NodeEvent: Sendable, Equatable {
    /// The channel exists in both journals (version 0 fully signed).
    case opened(ChannelID, peer: PublicKey)
    /// The chain shows both deposits; updates may flow.
    case funded(ChannelID)
    /// The peer proposed `version`; the update handler is deciding.
    case proposed(ChannelID, version: UInt64)
    /// A new fully-signed state, journaled. `mine` is true when we proposed it.
    case committed(ChannelID, SignedState, mine: Bool)
    /// A proposal was turned down: ours by the peer (`byPeer`), or the peer's (`version`) by us.
    case rejected(ChannelID, version: UInt64?, reason: String, byPeer: Bool)
    /// A session to `peer` is up; its channels re-synchronise.
    case peerConnected(PublicKey)
    /// The session to `peer` ended; the dialing side redials.
    case peerDisconnected(PublicKey, reason: String)
    /// Our proposal got no answer within the proposal timeout.
    case peerSilent(ChannelID)
    /// Someone registered `version` on chain; the window closes at `deadline`.
    case registered(ChannelID, version: UInt64, deadline: ChainTime, by: ParticipantIndex)
    /// `mover` made a move on chain (`progress`); a fresh window closes at `deadline`.
    case progressed(ChannelID, version: UInt64, deadline: ChainTime, mover: ParticipantIndex)
    /// The game goes on on chain and it is our move: `state` is the registered state. The
    /// chain-move handler (``Node/setChainMoveHandler(_:)``) is asked for the move; without
    /// one, we forfeit when the window closes.
    case yourTurnOnChain(ChannelID, state: ChannelState, deadline: ChainTime)
    /// Our watcher answered an older registration with our newer state.
    case refuted(ChannelID, stale: UInt64, with: UInt64)
    /// Our watcher registered our latest state to leave the channel on our own.
    case exitStarted(ChannelID, version: UInt64, reason: ExitReason)
    /// The chain fixed the payout from state `version`.
    case concluded(ChannelID, version: UInt64, allocation: Allocation)
    /// Our payout arrived in our chain account.
    case withdrawn(ChannelID, amount: Amount)
    /// Nothing of ours is left in the channel.
    case closed(ChannelID)
    /// The channel was never funded in time and is given up; any deposit of ours is taken
    /// back. An outcome, not an error: `closed` follows.
    case abandoned(ChannelID)
    /// Something went wrong that the node recovers from by itself (it retries or keeps
    /// serving other channels); `channel` is nil for node-wide trouble.
    case error(ChannelID?, String)
}

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

/// A deliberately malformed update, for drills (`Node.sendTampered`). The receiving node
/// must reject each one and keep its state (Docs/Protocol.md invariant 6).
@_spi(Drills) public enum Tampering: String, Sendable, CaseIterable {
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
