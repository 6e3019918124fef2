import DequeModule
import ParleyChannel
import ParleyCrypto
import ParleyGames
import ParleySettlement
import ParleyWire

/// The adversary: a peer with her own key that keeps every state she ever saw or signed
/// and may, at each step, do anything a malicious peer can (Docs/Simulation.md).
///
/// Her honest behaviour is the real `ChannelEngine` (in memory: she needs no journal, and
/// forgetting is her loss). Every deviation is built by hand from what she holds: states
/// re-signed at other versions, final flags, other allocations, replays from other
/// channels, lies at reestablish, countersigned-then-declined finals, and any chain call
/// with anything she holds, at any time.
///
/// Single-threaded: the simulator calls her between jobs, on its own thread.
final class Mallory: @unchecked Sendable {
    /// Every kind of move she can make, for the coverage report.
    enum Move: String, CaseIterable, Sendable {
        case follow, withhold, pay, finalize, decide = "decide-accept", rejectProposal = "decide-reject"
        case declineAfterCountersign = "decline-after-countersign"
        /// Switches between declining every final she is offered and a quarter of them.
        case declineMode = "decline-mode"
        case forgeOlder = "forge-older-version", forgeSteal = "forge-steal", forgeFinal = "forge-final"
        case forgeSkip = "forge-version-skip", replayOtherChannel = "replay-other-channel"
        case forgeCommitProof = "forge-commit-proof", lieReestablish = "lie-at-reestablish"
        case refuseReestablish = "refuse-reestablish", garbage
        case disconnect, dial, stopReading = "stop-reading", resumeReading = "resume-reading"
        case refuseDials = "refuse-dials", acceptDials = "accept-dials"
        case registerStale = "register-stale", registerLatest = "register-latest", conclude, withdraw, reclaim
        /// Registers a final state she countersigned in secret (it concludes at once).
        case registerHeldFinal = "register-held-final"
        /// Pays the honest node on a channel where she holds a secret final: the bribe that
        /// a declined close must not let through (issue 15, item 1).
        case bribe
        case deposit, depositMismatched = "deposit-mismatched", skipDeposit = "skip-deposit"
        case open, openWrongDomain = "open-wrong-domain", openMismatched = "open-mismatched"
        case replayOpen = "replay-open", acceptOpen = "accept-open", ignoreOpen = "ignore-open"
        case goQuiet = "go-quiet"
        /// The end as "go-quiet", but she keeps the session open and redials at once: the
        /// node reconnects, asks to reestablish, and hears nothing (issue 15, item 6).
        case goQuietConnected = "go-quiet-connected"
        case openGame = "open-game", move, moveOnChain = "move-on-chain"
        case progressFinalCopy = "progress-final-copy", stopMoving = "stop-moving"
    }

    struct Held {
        let params: ChannelParams
        let funding: Allocation
        /// Her seat.
        let me: ParticipantIndex
        var engine: ChannelEngine?
        /// Every state with at least one signature she has seen or made, newest last.
        var states: [SignedState] = []
        /// She decided what to deposit (once version 0 was fully signed).
        var depositDecided = false
        /// What she will deposit once version 0 is fully signed, if planned at the open.
        var depositPlan: Move?
    }

    let key: SigningKey
    let chain: LocalChainAdapter
    let honest: PublicKey
    /// The rules of every app she plays, by id: payments and tic-tac-toe.
    let apps: [AppID: any AppRules]
    var channels: [ChannelID: Held] = [:]
    /// Channel ids in the order she learned them (dictionary order is not stable).
    var order: [ChannelID] = []
    var link: Int?
    var inbox = Deque<[UInt8]>()
    var openProposals: [OpenProposal] = []
    var declineFinals = false
    /// Final states she countersigned in secret and answered "declined".
    var declinedFinals: Set<ChannelState> = []
    var refusingReestablish = false
    /// After the adversarial phase: she follows nothing and answers nothing.
    var quiet = false
    var moves: [Move: Int] = [:]
    /// Messages for the network: (link, bytes).
    var outbox: [(Int, [UInt8])] = []
    /// Chain calls to make (async, run by the simulator on her behalf).
    var chainCalls: [(Move, @Sendable () async throws -> Void)] = []
    /// She asked to drop the link (her engine's proposal timeout).
    var wantsDisconnect = false
    var random: SeededRandom
    private let note: (String) -> Void

    init(
        key: SigningKey, chain: LocalChainAdapter, honest: PublicKey, apps: [any AppRules], seed: UInt64,
        note: @escaping (String) -> Void
    ) {
        random = SeededRandom(seed: seed)
        self.key = key
        self.chain = chain
        self.honest = honest
        self.apps = Dictionary(apps.map { ($0.appID, $0) }, uniquingKeysWith: { first, _ in first })
        self.note = note
    }

    func count(_ move: Move) { moves[move, default: 0] += 1 }

    // MARK: - The network

    func hear(_ event: SimNetwork.MalloryEvent) {
        switch event {
        case let .connected(id, _):
            link = id
            inbox = []
            guard !quiet else { return }
            if let finished = replayOnConnect {
                replayOnConnect = nil
                replayOpen(preferring: finished)
            }
            guard !refusingReestablish else { return }
            for channel in order { feed(channel, .connected) }
        case let .message(id, bytes):
            guard id == link else { return }
            inbox.append(bytes)
        case let .closed(id, _):
            guard id == link else { return }
            link = nil
            inbox = []
            for channel in order { feed(channel, .disconnected) }
        }
    }

    private func send(_ message: ChannelMessage) {
        guard let link else { return }
        outbox.append((link, message.wireBytes))
    }

    // MARK: - Following the protocol

    /// Handles up to `limit` waiting messages the way the protocol says, deciding proposals by `decide`.
    func follow(limit: Int) {
        count(.follow)
        for _ in 0..<limit {
            guard let bytes = inbox.popFirst() else { break }
            guard let message = try? ChannelMessage(wireBytes: bytes) else { continue }
            archive(message)
            if case let .openProposal(proposal) = message {
                accept(proposal)
                continue
            }
            feed(message.channelID, .received(message))
        }
    }

    /// Keeps every signed state a message carries.
    private func archive(_ message: ChannelMessage) {
        switch message {
        case let .openProposal(proposal):
            openProposals.append(proposal)
            var signed = SignedState(state: proposal.initial)
            signed[.first] = proposal.signature
            keep(signed)
        case let .propose(state, signature):
            guard let held = channels[state.channelID] else { return }
            var signed = SignedState(state: state)
            signed[held.me.peer] = signature
            keep(signed)
        case let .commitProof(signed):
            keep(signed)
        case let .accept(id, version, signature):
            // The honest side countersigned one of her proposals: complete it.
            guard let held = channels[id],
                let mine = held.states.last(where: { $0.version == version && $0[held.me] != nil })
            else { return }
            var full = mine
            full[held.me.peer] = signature
            if full.state.isSigned(by: honest, with: signature) { keep(full) }
        case let .openAccept(id, signature):
            guard let held = channels[id], let mine = held.states.first(where: { $0.version == 0 }) else { return }
            var full = mine
            full[held.me.peer] = signature
            if full.state.isSigned(by: honest, with: signature) {
                keep(full)
                decideDeposit(id)
            }
        case .reject, .reestablish:
            break
        }
    }

    private func keep(_ signed: SignedState) {
        let id = signed.state.channelID
        guard var held = channels[id] else { return }
        if let index = held.states.firstIndex(where: { $0.state == signed.state }) {
            var merged = held.states[index]
            for seat in ParticipantIndex.allCases where merged[seat] == nil { merged[seat] = signed[seat] }
            held.states[index] = merged
        } else {
            held.states.append(signed)
        }
        channels[id] = held
    }

    /// Runs her engine on `input` and performs its effects.
    private func feed(_ id: ChannelID, _ input: EngineInput) {
        guard var engine = channels[id]?.engine else { return }
        var pending: Deque<EngineInput> = [input]
        while let next = pending.popFirst() {
            let effects = engine.handle(next)
            // The engine is hers alone; the states she keeps are written straight into
            // `channels` (by `keep`), so no stale copy of the channel is written back.
            channels[id]?.engine = engine
            for effect in effects {
                switch effect {
                case let .journal(.signed(signed)), let .journal(.committed(signed)):
                    keep(signed)
                case .journal:
                    break
                case let .send(message):
                    send(message)
                case let .decide(proposal):
                    pending.append(.decided(version: proposal.proposed.version, decide(proposal, id: id)))
                case .notify:
                    break
                case .scheduleRetry:
                    pending.append(.retryDue)
                case .disconnect:
                    wantsDisconnect = true
                }
            }
        }
    }

    /// Her answer to the honest side's proposal.
    private func decide(_ proposal: IncomingProposal, id: ChannelID) -> Decision {
        if proposal.proposed.isFinal && (declineFinals || random.next() % 4 == 0) {
            // The attack of the declined final: countersign in secret, answer "declined".
            count(.declineAfterCountersign)
            var held = SignedState(state: proposal.proposed)
            if let seat = channels[id]?.me {
                held[seat.peer] = proposal.signature
                held[seat] = proposal.proposed.signed(by: key)
                keep(held)
                declinedFinals.insert(proposal.proposed)
            }
            return .reject("declined (countersigned in secret)")
        }
        if random.next() % 8 == 0 {
            count(.rejectProposal)
            return .reject("no")
        }
        count(.decide)
        return .accept
    }

    // MARK: - Channels

    /// Accepts (or ignores) an open proposal from the honest side.
    private func accept(_ proposal: OpenProposal) {
        let id = proposal.params.id
        guard channels[id] == nil else {
            feed(id, .received(.openProposal(proposal)))
            return
        }
        guard random.next() % 6 != 0 else {
            count(.ignoreOpen)
            return
        }
        guard let rules = apps[proposal.params.appID],
            let (engine, effects) = try? ChannelEngine.accept(proposal, key: key, rules: rules)
        else { return }
        count(.acceptOpen)
        learn(Held(params: proposal.params, funding: proposal.initial.allocation, me: .second, engine: engine))
        for effect in effects {
            switch effect {
            case let .journal(.committed(signed)): keep(signed)
            case let .send(message): send(message)
            default: break
            }
        }
        decideDeposit(id)
    }

    /// Once version 0 is fully signed: deposit her share as agreed (mostly), a different
    /// opening, or nothing at all.
    private func decideDeposit(_ id: ChannelID) {
        guard var held = channels[id], !held.depositDecided else { return }
        held.depositDecided = true
        channels[id] = held
        if let plan = held.depositPlan {
            chainMove(plan, on: id)
            return
        }
        switch random.next() % 10 {
        case 0: count(.skipDeposit)
        case 1: chainMove(.depositMismatched, on: id)
        default: chainMove(.deposit, on: id)
        }
    }

    private func learn(_ held: Held) {
        if channels[held.params.id] == nil { order.append(held.params.id) }
        channels[held.params.id] = held
    }

    /// Proposes a channel to the honest side: she deposits `mine`, it deposits `theirs`;
    /// `deposit` says how, once the node has signed version 0 (else she decides then).
    func open(
        mine: Amount, theirs: Amount, domain: SettlementDomain, challenge: UInt64, app: AppID = .payment,
        deposit: Move? = nil
    ) {
        guard let rules = apps[app] else { return }
        let appData = app == TicTacToe.id ? TicTacToe.initialAppData : []
        var nonce: [UInt8] = []
        for _ in 0..<ChannelParams.nonceBytes { nonce.append(UInt8(truncatingIfNeeded: random.next())) }
        guard let params = try? ChannelParams(
            participants: [key.publicKey, honest], nonce: nonce, challengeDuration: challenge, appID: app,
            domain: domain),
            let (engine, effects) = try? ChannelEngine.propose(
                params: params, allocation: Allocation(mine, theirs), appData: appData, key: key, rules: rules)
        else { return }
        learn(Held(params: params, funding: Allocation(mine, theirs), me: .first, engine: engine, depositPlan: deposit))
        for effect in effects {
            switch effect {
            case let .journal(.signed(signed)): keep(signed)
            case let .send(message):
                if case let .openProposal(proposal) = message { openProposals.append(proposal) }
                send(message)
            default: break
            }
        }
    }

    /// Replays an open as soon as she is next connected (set after the honest node
    /// restarts: a node that forgets its closed channels would take the old open again).
    var replayOnConnect: ((ChannelID) -> Bool)?

    /// Sends again an open proposal she made or saw before: mostly one of a channel that
    /// `finished` says is over (concluded, given up, never funded), if there is one.
    func replayOpen(preferring finished: ((ChannelID) -> Bool)? = nil) {
        guard !openProposals.isEmpty else { return }
        count(.replayOpen)
        var candidates = openProposals
        if let finished, random.next() % 4 != 0 {
            let over = openProposals.filter { finished($0.params.id) }
            if !over.isEmpty { candidates = over }
        }
        let proposal = candidates[Int(random.next() % UInt64(candidates.count))]
        note("replays the open of \(proposal.params.id.shortID)")
        send(.openProposal(proposal))
    }

    func pay(_ id: ChannelID, amount: Amount, update: UpdateID) {
        count(.pay)
        feed(id, .update(update, .pay(amount: amount)))
    }

    func finalize(_ id: ChannelID, update: UpdateID) {
        count(.finalize)
        feed(id, .update(update, .finalize))
    }

    // MARK: - Games

    /// Her move in a game whose latest state is hers to move: a random empty cell.
    func move(_ id: ChannelID, update: UpdateID) {
        guard let held = channels[id], let engine = held.engine, let rules = apps[held.params.appID],
            engine.latest.isFullySigned, rules.mover(in: engine.latest.state) == held.me,
            let board = try? TicTacToe.Board(appData: engine.latest.state.appData), !board.emptyCells.isEmpty,
            let next = try? TicTacToe.move(
                board.emptyCells[Int(random.next() % UInt64(board.emptyCells.count))], in: engine.latest.state)
        else { return }
        count(.move)
        feed(id, .update(update, .replace(
            base: engine.latest.version, allocation: next.allocation, appData: next.appData, isFinal: false)))
    }

    /// On chain, when the registered game is hers to move: a legal move signed by her alone,
    /// or (the attack of issue 15, item 4) a final copy of the registered state, which would
    /// end the game as it stands instead of forfeiting.
    func moveOnChain(_ id: ChannelID, registered: ChannelState, finalCopy: Bool) {
        guard let held = channels[id], let rules = apps[held.params.appID], rules.mover(in: registered) == held.me else {
            return
        }
        var next = registered
        if finalCopy {
            next.isFinal = true
        } else {
            guard let board = try? TicTacToe.Board(appData: registered.appData), !board.emptyCells.isEmpty,
                let moved = try? TicTacToe.move(
                    board.emptyCells[Int(random.next() % UInt64(board.emptyCells.count))], in: registered)
            else { return }
            next = moved
        }
        next.version = registered.version + 1
        let state = next
        let signature = state.signed(by: key)
        var mine = SignedState(state: state)
        mine[held.me] = signature
        keep(mine)
        let move: Move = finalCopy ? .progressFinalCopy : .moveOnChain
        let chain = self.chain
        note("\(finalCopy ? "progresses to a final copy" : "moves on chain") v\(next.version) on \(id.shortID)")
        chainCalls.append((move, { _ = try await chain.progress(id, to: state, moverSignature: signature) }))
    }

    // MARK: - Deviations

    /// A fully-signed final state on `id` that she declined after countersigning it.
    func heldFinal(_ id: ChannelID) -> SignedState? {
        channels[id]?.states.last { $0.isFullySigned && $0.state.isFinal && declinedFinals.contains($0.state) }
    }

    /// Her newest state on `id` with both signatures.
    func newestFull(_ id: ChannelID) -> SignedState? {
        channels[id]?.states.filter(\.isFullySigned).max { $0.version < $1.version }
    }

    func anyFull(_ id: ChannelID) -> SignedState? {
        let full = channels[id]?.states.filter(\.isFullySigned) ?? []
        return full.isEmpty ? nil : full[Int(random.next() % UInt64(full.count))]
    }

    /// Sends a proposal of a state she builds, signed by her alone.
    func forge(_ move: Move, on id: ChannelID) {
        guard let held = channels[id], let base = newestFull(id) ?? held.states.last else { return }
        count(move)
        var state = base.state
        let top = held.states.map(\.version).max() ?? 0
        switch move {
        case .forgeOlder:
            state.version = base.version > 0 ? UInt64(random.next() % base.version) : 0
        case .forgeSteal:
            state.version = top + 1
            let total = state.allocation.total ?? 0
            state.allocation[held.me] = total
            state.allocation[held.me.peer] = 0
        case .forgeFinal:
            state.version = top + 1
            state.isFinal = true
            let total = state.allocation.total ?? 0
            let mine = total == 0 ? 0 : Amount(random.next()) % (total + 1)
            state.allocation[held.me] = mine
            state.allocation[held.me.peer] = total - mine
        case .forgeSkip:
            state.version = top + 2 + random.next() % 5
            if state.allocation[held.me] > 0 {
                state.allocation[held.me] -= 1
                state.allocation[held.me.peer] += 1
            }
        case .replayOtherChannel:
            guard let other = order.filter({ $0 != id }).randomElement(using: &random),
                let foreign = channels[other]?.states.last
            else { return }
            state = foreign.state
            state.channelID = id
        default:
            return
        }
        note("forges \(move.rawValue) v\(state.version) on \(id.shortID)")
        send(.propose(state: state, signature: state.signed(by: key)))
    }

    /// A commit proof with a state the honest side never signed, or a stale one.
    func forgeCommitProof(on id: ChannelID) {
        guard let held = channels[id], let base = anyFull(id) else { return }
        count(.forgeCommitProof)
        var signed = base
        if random.next() % 2 == 0 {
            signed.state.version = (held.states.map(\.version).max() ?? 0) + 1
            signed[held.me] = signed.state.signed(by: key)
        }
        send(.commitProof(signed))
    }

    func lieAtReestablish(on id: ChannelID) {
        guard channels[id] != nil else { return }
        count(.lieReestablish)
        send(.reestablish(channelID: id, committedVersion: random.next() % 20, highestSignedVersion: random.next() % 20))
    }

    func garbage() {
        guard let link else { return }
        count(.garbage)
        var bytes: [UInt8] = []
        for _ in 0..<(1 + random.next() % 40) { bytes.append(UInt8(truncatingIfNeeded: random.next())) }
        outbox.append((link, bytes))
    }

    // MARK: - The chain

    /// Queues a chain call of `move` on channel `id` with what she holds.
    func chainMove(_ move: Move, on id: ChannelID) {
        guard let held = channels[id] else { return }
        let chain = self.chain
        switch move {
        case .registerStale:
            guard let stale = anyFull(id) else { return }
            note("registers v\(stale.version) on \(id.shortID)")
            chainCalls.append((move, { _ = try await chain.register(stale) }))
        case .registerLatest:
            guard let latest = newestFull(id) else { return }
            chainCalls.append((move, { _ = try await chain.register(latest) }))
        case .registerHeldFinal:
            guard let final = heldFinal(id) else { return }
            note("registers the final v\(final.version) she holds on \(id.shortID)")
            chainCalls.append((move, { _ = try await chain.register(final) }))
        case .conclude:
            chainCalls.append((move, { _ = try await chain.conclude(id) }))
        case .withdraw:
            let seat = held.me
            chainCalls.append((move, { _ = try await chain.withdraw(id, participant: seat) }))
        case .reclaim:
            chainCalls.append((move, { _ = try await chain.reclaim(id) }))
        case .deposit:
            let (params, opening, seat) = (held.params, held.funding, held.me)
            chainCalls.append((move, {
                _ = try await chain.deposit(params: params, opening: opening, participant: seat, amount: opening[seat])
            }))
        case .depositMismatched:
            let (params, seat) = (held.params, held.me)
            // More than agreed, or (the attack of issue 15, item 2) less: 1 under an opening
            // that says her share is 1, which would fund the channel if "funded" were all
            // that counted.
            var other = held.funding
            if other[seat] > 1, random.next() % 2 == 0 {
                other[seat] = 1 + Amount(random.next()) % (other[seat] - 1)
            } else {
                other[seat] = other[seat] &+ 1 + Amount(random.next() % 50)
            }
            let opening = other
            chainCalls.append((move, {
                _ = try await chain.deposit(params: params, opening: opening, participant: seat, amount: opening[seat])
            }))
        default:
            return
        }
    }
}
