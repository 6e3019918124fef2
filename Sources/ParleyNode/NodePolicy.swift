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

    /// The most `pay` calls one update may carry. Payments waiting on one channel while an
    /// update is in flight go out together in the next one: the state pays their sum, the
    /// peer's update handler is asked once, and each caller returns when that state commits.
    /// If the peer refuses such a batch, each payment is proposed again alone and gets its
    /// own answer (Docs/Node.md, "Concurrent payments"). 1 sends every payment alone.
    public var maxPaymentsPerUpdate: Int = ChannelEngine.defaultMaxPaymentsPerUpdate {
        didSet { maxPaymentsPerUpdate = max(1, maxPaymentsPerUpdate) }
    }

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
