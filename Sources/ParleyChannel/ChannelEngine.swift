import DequeModule
import ParleyCrypto
import ParleyWire

/// The two-party update protocol for one channel, as a pure state machine.
///
/// `handle(_:)` takes an input and returns the effects to perform, in order;
/// it performs no I/O and reads no clock. The node is the imperative shell:
/// it journals, sends, asks the update handler and notifies the app.
///
/// Contract for the node: perform the returned effects in list order, and make
/// every `.journal` effect durable before performing any effect after it. That
/// ordering is what makes Docs/Protocol.md invariants 1 and 2 hold: the engine always
/// lists the journal record of a signature before the message carrying it.
///
/// Safety the engine itself guarantees (tests pin each):
/// - it signs a version only when that version is above every version it has
///   signed or seen, so it never signs two states with one version;
/// - every state it signs or countersigns conserves `fundedTotal`;
/// - anything malformed, unsigned, stale or unexpected changes nothing but
///   (for a validly signed proposal) the record that its version is burned.
public struct ChannelEngine: Sendable {
    public let params: ChannelParams
    public let me: ParticipantIndex
    /// The sum both balances must always equal.
    public let fundedTotal: Amount
    /// The newest state we hold: fully signed, except while `phase == .opening`.
    public internal(set) var latest: SignedState
    /// The highest version we ever signed (journaled before it left).
    public internal(set) var highestSignedVersion: UInt64
    /// The highest version known to be used by either side; the next proposal takes the one above.
    public internal(set) var highestSeenVersion: UInt64
    /// The newest final state we signed above `latest` that has not committed (while it is
    /// in flight, and for good once the peer declined it or a reconnect showed it did not
    /// commit). A "declined" final state may still be held countersigned by the peer, who
    /// can register it whenever it likes, and it concludes at once. So while this is set the
    /// channel takes only a final state with the same balances and app data (a cooperative
    /// close); nothing that could be worth more to us, and be wiped out by it, is signed.
    @Boxed public internal(set) var uncommittedFinal: SignedState?
    /// The state we signed at the version right after `latest`, while nothing newer is
    /// committed (our proposal there, even when it was burned). A move on chain from
    /// `latest` is made at exactly that version, so it must be this state: signing another
    /// would put two states of ours at one version (invariant 1), and refusing to sign
    /// would forfeit the game (found by the simulator, issue 16).
    @Boxed public internal(set) var signedNext: SignedState?

    let key: any StateSigner
    let rules: any AppRules
    /// Our signed, unanswered proposal.
    @Boxed var outgoing: Outgoing?
    /// The peer's proposal waiting for our update handler.
    @Boxed var incoming: Incoming?
    /// Local update requests not yet proposed, oldest first.
    var queue = Deque<Request>()
    /// The most payments one proposal may carry (see `proposeNext`); 1 turns coalescing off.
    public var maxPaymentsPerUpdate = ChannelEngine.defaultMaxPaymentsPerUpdate
    /// We lost a simultaneous-proposal tie-break and wait for `.retryDue`.
    var yieldingAfterTie = false
    var link: Link = .up

    /// One local update request.
    struct Request: Sendable {
        let id: UpdateID
        let intent: UpdateIntent
        /// Proposed on its own, never coalesced with others: it rode in a batch of payments
        /// the peer refused, and is asked about again alone (see `receiveReject`).
        var alone = false
    }

    /// Each proposal keeps its state's signing digest: the answer to it needs the same
    /// digest again (to check the peer's signature, or to countersign), and hashing means
    /// encoding the state first, which would cost two more allocations per update.
    struct Outgoing: Sendable {
        /// The request the proposal was built for.
        let head: Request
        /// Payments coalesced into the same proposal after `head`, oldest first (usually none).
        let riders: [Request]
        let signed: SignedState
        /// `params.signingDigest(of: signed.state)`.
        let digest: Digest
        var version: UInt64 { signed.version }
        /// Every request the proposal settles, oldest first.
        var ids: [UpdateID] { riders.isEmpty ? [head.id] : [head.id] + riders.map(\.id) }
        var requests: [Request] { [head] + riders }
    }

    struct Incoming: Sendable {
        let signed: SignedState
        /// `params.signingDigest(of: signed.state)`.
        let digest: Digest
        var state: ChannelState { signed.state }
        var version: UInt64 { signed.version }
    }

    enum Link: Equatable, Sendable {
        case up
        case down
        /// Connected; waiting for the peer's `reestablish`.
        case awaitingPeer
        /// The peer announced this newer committed version and will send it with both signatures.
        case awaitingProof(UInt64)
    }

    /// The most a peer may claim to have signed beyond the latest commit
    /// during reestablish; keeps a lying peer from exhausting version numbers.
    public static let maxBurnedVersions: UInt64 = 1 << 32

    /// Effects one input usually produces (journal, send, notify): reserved up front so
    /// the list does not grow, and reallocate, one append at a time on every update.
    static let typicalEffectCount = 4

    /// The default for `maxPaymentsPerUpdate`: enough for every payer of a busy channel to
    /// ride one update, few enough that one commit resumes a bounded number of callers.
    public static let defaultMaxPaymentsPerUpdate = 256

    init(params: ChannelParams, me: ParticipantIndex, key: any StateSigner, rules: any AppRules, latest: SignedState) {
        self.params = params
        self.me = me
        self.key = key
        self.rules = rules
        self.latest = latest
        fundedTotal = latest.state.allocation.total ?? 0
        highestSignedVersion = latest.version
        highestSeenVersion = latest.version
    }

    public var peer: ParticipantIndex { me.peer }
    /// The app rules every state of this channel is checked against.
    public var appRules: any AppRules { rules }
    public var channelID: ChannelID { params.id }

    /// The latest fully-signed state, or `nil` while the channel is opening.
    public var committed: SignedState? { latest.isFullySigned ? latest : nil }

    /// Local updates waiting to be proposed (not counting one in flight).
    public var queuedUpdates: Int { queue.count }

    /// Our signed proposal still waiting for the peer's answer: the update it carries and
    /// the state proposed.
    public var outstandingProposal: (update: UpdateID, state: ChannelState)? {
        outgoing.map { ($0.head.id, $0.signed.state) }
    }

    public var phase: Phase {
        if !latest.isFullySigned { return .opening }
        if latest.state.isFinal { return .final }
        switch link {
        case .down: return .offline
        case .awaitingPeer, .awaitingProof: return .syncing
        case .up: break
        }
        if incoming != nil { return .responding }
        if outgoing != nil { return .proposing }
        return .idle
    }

    /// Feeds one input to the channel and returns the effects to perform, in order.
    ///
    /// Package-internal on purpose: outside Parley the only way to drive an
    /// engine is `JournaledEngine` (ParleyJournal), which makes every journal
    /// record durable before it hands back the effects that depend on it.
    package mutating func handle(_ input: EngineInput) -> [Effect] {
        let before = phase
        var effects: [Effect] = []
        effects.reserveCapacity(Self.typicalEffectCount)
        switch input {
        case let .update(id, intent): queue.append(Request(id: id, intent: intent))
        case let .received(message): receive(message, into: &effects)
        case let .decided(version, decision): decide(version, decision, into: &effects)
        case let .proposalTimedOut(version): timeOut(version, into: &effects)
        case .retryDue: yieldingAfterTie = false
        case .disconnected: goOffline()
        case .connected: reconnect(into: &effects)
        case .dropQueued: failQueued(.refused(.notReady("the peer did not answer in time")), into: &effects)
        }
        proposeNext(into: &effects)
        assert(
            Phase.isAllowed(from: before, to: phase, on: input.trigger),
            "phase change \(before) -> \(phase) on \(input.trigger) is not in Phase.transitions")
        return effects
    }

    private mutating func receive(_ message: ChannelMessage, into effects: inout [Effect]) {
        guard message.channelID == params.id else {
            effects.append(.notify(.ignoredMessage(.wrongChannel(expected: params.id, got: message.channelID))))
            return
        }
        guard link != .down else { return }  // a message from a closed session
        switch message {
        case let .openProposal(proposal): receiveDuplicateOpen(proposal, into: &effects)
        case let .openAccept(_, signature): receiveOpenAccept(signature, into: &effects)
        case let .propose(state, signature): receiveProposal(state, signature, into: &effects)
        case let .accept(_, version, signature): receiveAccept(version, signature, into: &effects)
        case let .reject(_, version, reason): receiveReject(version, reason, into: &effects)
        case let .reestablish(_, committed, signed):
            receiveReestablish(peerCommitted: committed, peerSigned: signed, into: &effects)
        case let .commitProof(signed): receiveProof(signed, into: &effects)
        }
    }

    /// Checks the rules every state we sign or countersign must meet, given the latest committed state.
    func validateSuccessor(_ next: ChannelState, mover: ParticipantIndex) throws(UpdateRejection) {
        guard next.channelID == params.id else { throw .wrongChannel(expected: params.id, got: next.channelID) }
        guard !latest.state.isFinal else { throw .updateAfterFinal }
        if let outstanding = uncommittedFinal?.state {
            guard next.isFinal, next.allocation == outstanding.allocation, next.appData == outstanding.appData else {
                throw .finalStateOutstanding(version: outstanding.version)
            }
        }
        guard let total = next.allocation.total else { throw .balanceOverflow }
        guard total == fundedTotal else { throw .balanceNotConserved(total: fundedTotal, proposed: total) }
        let appDataLimit = min(WireLimits.maxAppDataBytes, params.backend.maxAppDataBytes)
        guard next.appData.count <= appDataLimit else {
            throw .appDataTooLarge(bytes: next.appData.count, limit: appDataLimit)
        }
        do { try rules.validateTransition(from: latest.state, to: next, mover: mover) } catch {
            throw .appRuleViolated(error.reason)
        }
    }

    /// Makes `signed` (fully signed, newer than `latest`) the latest state. Caller journals it first.
    mutating func adopt(_ signed: SignedState) {
        latest = signed
        highestSeenVersion = max(highestSeenVersion, signed.version)
        highestSignedVersion = max(highestSignedVersion, signed.version)
        incoming = nil
        if let final = uncommittedFinal, final.version <= signed.version { uncommittedFinal = nil }
        if let next = signedNext, next.version <= signed.version { signedNext = nil }
    }

    /// Remembers `signed`, which we just signed, when it is at the version after `latest`.
    mutating func noteSigned(_ signed: SignedState) {
        if signed.version == latest.version + 1, signedNext == nil { signedNext = signed }
    }
}

extension EngineInput {
    /// The phase-table trigger this input counts as.
    public var trigger: Phase.Trigger {
        switch self {
        case .update: return .localUpdate
        case let .received(message): return message.kind.trigger
        case .decided: return .decision
        case .proposalTimedOut: return .timeout
        case .retryDue: return .retry
        case .disconnected: return .disconnect
        case .connected: return .connect
        case .dropQueued: return .timeout
        }
    }
}

extension ChannelMessage.Kind {
    var trigger: Phase.Trigger {
        switch self {
        case .openProposal, .propose: return .remoteProposal
        case .openAccept: return .openAccepted
        case .accept, .reject: return .remoteAnswer
        case .reestablish: return .reestablish
        case .commitProof: return .proof
        }
    }
}
