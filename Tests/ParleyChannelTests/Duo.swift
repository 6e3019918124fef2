import DequeModule
import ParleyCrypto
import ParleyWire

@testable import ParleyChannel

/// One side of a two-engine test: the engine plus everything its effects did.
struct Side {
    var engine: ChannelEngine
    var journal: [JournalRecord] = []
    var events: [ChannelEvent] = []
    /// Versions the engine asked the update handler about, oldest first.
    var decisions = Deque<UInt64>()
    var retryScheduled = false
    /// The last version this side proposed (for firing timeouts).
    var lastProposed: UInt64?
    /// Every state this side ever signed, by version: the equivocation detector.
    var signedByMe: [UInt64: ChannelState] = [:]

    /// What each local request asked for, by id.
    var requested: [UpdateID: UpdateIntent] = [:]
    /// Requests that committed or failed: each may be settled once.
    var settled: Set<UpdateID> = []
    /// The newest state this side reported committed.
    var lastReported: ChannelState?

    var committedUpdates: [UpdateID] {
        events.flatMap { event -> [UpdateID] in
            if case let .committed(_, updates) = event { return updates }
            return []
        }
    }

    /// Requests made and never settled (nothing in flight or queued may hold them).
    var unsettled: Set<UpdateID> { Set(requested.keys).subtracting(settled) }

    var failedUpdates: [(UpdateID, UpdateFailure)] {
        events.compactMap { if case let .updateFailed(id, why) = $0 { return (id, why) } else { return nil } }
    }
}

/// A violated safety invariant, with enough detail to debug it.
struct InvariantViolation: Error, CustomStringConvertible {
    let description: String
}

/// Two engines joined by an in-memory, fault-injectable network.
///
/// Every effect is checked as it is performed: signatures must be journaled
/// before they are sent (invariants 1, 2), no side signs two states of one
/// version (1), every committed state conserves the funded total (3) and
/// carries two valid signatures, and no two different fully-signed states of
/// one version ever exist across both sides.
struct Duo {
    var sides: [Side]
    /// `wire[i]` holds messages in flight from side i to the other side.
    var wire: [Deque<ChannelMessage>] = [[], []]
    var connected = true
    var violations: [InvariantViolation] = []
    /// Every phase change either engine made, for coverage of the phase table.
    var transitionsSeen: Set<Phase.Transition> = []
    /// Every fully-signed state either side journaled, by version.
    var fullySigned: [UInt64: ChannelState] = [:]
    let params: ChannelParams

    /// Opens a channel between alice (first) and bob (second) and delivers the handshake.
    init(
        alice: Amount = 100, bob: Amount = 100, params: ChannelParams = Fixtures.params(),
        deliverHandshake: Bool = true
    ) throws {
        self.params = params
        let (opener, openEffects) = try ChannelEngine.propose(
            params: params, allocation: Allocation(alice, bob), key: Fixtures.signer(Fixtures.alice, params.backendID))
        guard case let .send(.openProposal(proposal))? = openEffects.last else {
            throw InvariantViolation(description: "propose did not end by sending the proposal")
        }
        let (responder, acceptEffects) = try ChannelEngine.accept(proposal, key: Fixtures.signer(Fixtures.bob, params.backendID))
        sides = [Side(engine: opener), Side(engine: responder)]
        perform(openEffects, on: 0)
        wire[0].removeAll()  // bob's engine was built from the proposal directly
        perform(acceptEffects, on: 1)
        if deliverHandshake { deliverAll() } else { wire = [[], []] }
    }

    var alice: Side { sides[0] }
    var bob: Side { sides[1] }

    mutating func input(_ side: Int, _ input: EngineInput) {
        if case let .update(id, intent) = input { sides[side].requested[id] = intent }
        let before = sides[side].engine.phase
        let effects = sides[side].engine.handle(input)
        let after = sides[side].engine.phase
        if before != after {
            transitionsSeen.insert(Phase.Transition(from: before, to: after, trigger: input.trigger))
        }
        if !Phase.isAllowed(from: before, to: after, on: input.trigger) {
            violations.append(InvariantViolation(description: "side \(side): \(before) -> \(after) on \(input.trigger)"))
        }
        perform(effects, on: side)
    }

    mutating func pay(_ side: Int, _ amount: Amount, id: UpdateID) {
        input(side, .update(id, .pay(amount: amount)))
    }

    /// Delivers the oldest message from `side` to the other side.
    @discardableResult
    mutating func deliver(from side: Int, at index: Int = 0, keepCopy: Bool = false) -> Bool {
        guard index < wire[side].count else { return false }
        let message = keepCopy ? wire[side][index] : wire[side].remove(at: index)
        input(1 - side, .received(message))
        return true
    }

    /// Delivers everything in flight, in order, until both directions are empty.
    mutating func deliverAll(limit: Int = 10_000) {
        var budget = limit
        while budget > 0, deliver(from: 0) || deliver(from: 1) { budget -= 1 }
    }

    mutating func decideAll(_ decision: Decision = .accept) {
        for side in 0..<2 {
            let versions = sides[side].decisions
            sides[side].decisions.removeAll()
            for version in versions { input(side, .decided(version: version, decision)) }
        }
    }

    mutating func disconnect() {
        guard connected else { return }
        connected = false
        wire = [[], []]
        input(0, .disconnected)
        input(1, .disconnected)
    }

    mutating func connect() {
        guard !connected else { return }
        connected = true
        input(0, .connected)
        input(1, .connected)
    }

    /// Runs the protocol to quiescence on a reliable network: every decision
    /// accepted, every retry fired. Records a violation if it never goes quiet
    /// (a livelock) within `rounds`.
    mutating func settle(rounds: Int = 500) {
        for _ in 0..<rounds {
            deliverAll(limit: 1000)
            decideAll()
            for side in 0..<2 where sides[side].retryScheduled {
                sides[side].retryScheduled = false
                input(side, .retryDue)
            }
            let quiet = wire.allSatisfy(\.isEmpty) && sides.allSatisfy { $0.decisions.isEmpty && !$0.retryScheduled }
            if quiet { return }
        }
        violations.append(InvariantViolation(description: "no quiescence after \(rounds) rounds: livelock"))
    }

    private mutating func perform(_ effects: [Effect], on side: Int) {
        for effect in effects {
            switch effect {
            case let .journal(entry): record(entry, on: side)
            case let .send(message): send(message, from: side)
            case let .decide(proposal): sides[side].decisions.append(proposal.proposed.version)
            case let .notify(event): notify(event, on: side)
            case .scheduleRetry: sides[side].retryScheduled = true
            case .disconnect:
                if connected { disconnect() }
            }
        }
    }

    private mutating func record(_ record: JournalRecord, on side: Int) {
        sides[side].journal.append(record)
        let me = sides[side].engine.me
        switch record {
        case let .signed(signed):
            noteSignature(signed, by: me, on: side)
        case let .committed(signed):
            noteSignature(signed, by: me, on: side)
            check(signed.isFullySigned, "side \(side) journaled a committed state without both signatures")
            check((try? signed.verify(against: params)) != nil, "side \(side) committed a state with a bad signature")
            check(
                signed.state.allocation.total == sides[side].engine.fundedTotal,
                "side \(side) committed v\(signed.version) with total \(String(describing: signed.state.allocation.total))")
            if let known = fullySigned[signed.version], known != signed.state {
                violations.append(InvariantViolation(description: "two fully-signed states of version \(signed.version)"))
            }
            fullySigned[signed.version] = signed.state
        case .opened, .aborted:
            break
        }
    }

    private mutating func noteSignature(_ signed: SignedState, by me: ParticipantIndex, on side: Int) {
        guard signed[me] != nil else { return }
        if let earlier = sides[side].signedByMe[signed.version], earlier != signed.state {
            violations.append(InvariantViolation(description: "side \(side) signed two states of version \(signed.version)"))
        }
        sides[side].signedByMe[signed.version] = signed.state
    }

    private mutating func send(_ message: ChannelMessage, from side: Int) {
        // Journal before effect: any signature of ours in the message must already be journaled.
        let me = sides[side].engine.me
        var sentSignature: (version: UInt64, signature: StateSignature)?
        switch message {
        case let .propose(state, signature):
            sentSignature = (state.version, signature)
            sides[side].lastProposed = state.version
        case let .openProposal(proposal): sentSignature = (0, proposal.signature)
        case let .accept(_, version, signature): sentSignature = (version, signature)
        case let .openAccept(_, signature): sentSignature = (0, signature)
        default: break
        }
        if let (version, signature) = sentSignature {
            let journaled = sides[side].signedByMe[version].map { isJournaled($0, signature, by: me, on: side) }
            check(journaled ?? false, "side \(side) sent its signature on v\(version) before journaling it")
        }
        if connected { wire[side].append(message) }
    }

    private func isJournaled(_ state: ChannelState, _ signature: StateSignature, by me: ParticipantIndex, on side: Int) -> Bool {
        sides[side].journal.contains { record in
            switch record {
            case let .signed(signed), let .committed(signed): return signed.state == state && signed[me] == signature
            default: return false
            }
        }
    }

    private mutating func notify(_ event: ChannelEvent, on side: Int) {
        sides[side].events.append(event)
        switch event {
        case let .committed(signed, updates):
            check(
                sides[side].journal.contains(.committed(signed)),
                "side \(side) reported v\(signed.version) before journaling it")
            settle(updates, on: side)
            if updates.count > 1, let before = sides[side].lastReported {
                // Coalesced payments: only payments ride together, and the state pays exactly their sum.
                let me = sides[side].engine.me
                var sum: Amount = 0
                for id in updates {
                    guard case let .pay(amount)? = sides[side].requested[id] else {
                        return check(false, "side \(side) coalesced request \(id), not a payment, into v\(signed.version)")
                    }
                    sum += amount
                }
                check(
                    before.allocation[me] >= sum && signed.state.allocation[me] == before.allocation[me] - sum,
                    "side \(side) v\(signed.version) pays \(before.allocation[me]) -> \(signed.state.allocation[me]), not the sum \(sum) of \(updates)")
            }
            sides[side].lastReported = signed.state
        case let .opened(signed):
            sides[side].lastReported = signed.state
        case let .updateFailed(id, _):
            settle([id], on: side)
        default:
            break
        }
    }

    /// Each request is answered once: committed or failed, never both, never twice.
    private mutating func settle(_ ids: [UpdateID], on side: Int) {
        for id in ids {
            check(sides[side].requested[id] != nil, "side \(side) settled request \(id), which it never made")
            check(sides[side].settled.insert(id).inserted, "side \(side) settled request \(id) twice")
        }
    }

    private mutating func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { violations.append(InvariantViolation(description: message())) }
    }
}
