import ParleyChannel
import ParleyJournal
import ParleySettlement
import ParleyWire

/// The one next step the watcher takes for a channel, decided from what the chain shows,
/// what the journal holds, and whether we want out.
///
/// Level-triggered on purpose: the decision depends only on current facts, never on
/// which event woke the watcher, so replaying the chain's whole history after a restart,
/// a duplicated event or a lost wake-up all lead to the same place.
enum WatcherStep: Equatable, Sendable {
    /// Put this fully-signed state on chain: to refute an older registration, to exit
    /// unilaterally, or to conclude at once with a final state.
    case register(SignedState, because: RegisterReason)
    /// The window has closed: fix the payout.
    case conclude
    /// Take our concluded payout.
    case withdraw(amount: Amount)
    /// The channel was never funded and we want out: take our deposit back.
    case reclaim
    /// Nothing is left for us on chain; record the channel as closed.
    case markClosed
    /// A window is open and we hold nothing newer: look again once chain time reaches this.
    case waitUntil(ChainTime)
    /// Nothing to do until something changes.
    case idle

    enum RegisterReason: Equatable, Sendable {
        /// The registered state is older than our latest (invariant 4).
        case refute(registered: UInt64)
        /// We asked to leave: the peer is silent or the app called `dispute()` (invariant 5).
        case exit
        /// Our latest state is final: registering it concludes at once.
        case cooperativeClose
    }

    /// - Parameters:
    ///   - chain: the chain's snapshot, nil if no deposit named the channel.
    ///   - record: the journal's record: `latest` is the newest fully-signed state we hold.
    ///   - me: our seat.
    ///   - now: chain time.
    ///   - exitRequested: we want to leave the channel through the chain.
    ///   - refutes: false for a channel whose stale registration is our own doing (a drill's
    ///     cheater): we then wait out the window instead of answering it.
    ///   - depositInFlight: a deposit of ours into the channel was submitted and has not
    ///     answered yet (it may still land).
    static func decide(
        chain: ChannelOnChain?, record: ChannelRecord, me: ParticipantIndex, now: ChainTime, exitRequested: Bool,
        refutes: Bool = true, depositInFlight: Bool = false
    ) -> WatcherStep {
        guard let chain, chain.isFunded else {
            // Never funded and we want out (the peer went silent while opening, or the app
            // disputed before the opening completed): our deposit comes back now, whatever
            // happened to the funding timer. That timer lives in memory only; without this a
            // restart left the deposit locked for good (found by the simulator, issue 16).
            guard exitRequested, !record.isClosed else { return .idle }
            if let chain, chain.deposits[me] > 0 { return .reclaim }
            // Nothing of ours is in it, and nothing is on its way (no deposit starts once an
            // exit is requested): the channel is over for us. Waiting instead left it open
            // for ever at version 0 whenever the peer's deposit alone sat in it (found by
            // the simulator, issue 16).
            return depositInFlight ? .idle : .markClosed
        }
        let latest = record.latest.isFullySigned ? record.latest : nil
        if let payout = chain.concludedAllocation {
            // A payout of ours is taken whatever the journal believes: a channel we closed
            // (nothing of ours in it, as far as we knew) may still conclude with something
            // for us, and the chain is what counts.
            if payout[me] > 0, !chain.withdrawn.contains(me) { return .withdraw(amount: payout[me]) }
            guard !record.isClosed else { return .idle }
            guard payout[me] > 0 else { return .markClosed }
            // Close only once the withdrawal is in the journal (the chain event writes it).
            if case .withdrawn? = record.dispute { return .markClosed }
            return .idle
        }
        guard chain.opening == record.funding, chain.params == record.params else {
            // Funded on other terms than we agreed (the peer's deposit fixed another opening):
            // none of our states can ever be registered, and asking again and again only
            // hammers the chain (found by the simulator, issue 16). We never deposit into
            // such a channel, so leaving it costs nothing.
            guard exitRequested, !record.isClosed, chain.deposits[me] == 0 else { return .idle }
            return .markClosed
        }
        guard let registered = chain.registeredVersion, let deadline = chain.deadline else {
            guard let latest else { return .idle }
            if latest.state.isFinal { return .register(latest, because: .cooperativeClose) }
            return exitRequested ? .register(latest, because: .exit) : .idle
        }
        guard chain.isWindowOpen(at: now) else { return .conclude }
        // Refute an older registration, and a move progressed on chain at the version we
        // hold fully signed (the chain lets both signatures replace the mover's alone).
        if refutes, let latest,
            latest.version > registered
                || (latest.version == registered && chain.isProgressed && chain.registeredState != latest.state)
        {
            return .register(latest, because: .refute(registered: registered))
        }
        return .waitUntil(deadline)
    }
}
