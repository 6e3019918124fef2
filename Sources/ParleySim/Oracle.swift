import ParleyChannel
import ParleyCrypto
import ParleyGames
import ParleyJournal
import ParleySettlement
import ParleyWire

/// What must hold whatever Mallory does (Docs/Simulation.md, "The oracle"). It watches
/// the honest node from outside: every message it sends, every chain call it makes,
/// every commitment it reports, and the chain itself.
struct Oracle {
    /// Which rule broke.
    enum Rule: String, Sendable, CaseIterable {
        case oneStatePerVersion = "one-state-per-version"
        case committedSurvivesCrash = "committed-survives-crash"
        case payoutAtLeastCommitted = "payout-at-least-committed"
        case liveness
        case conservation
        case journalReadable = "journal-readable"
        case determinism
        /// An update commits only on a channel the chain holds funded exactly as both sides
        /// agreed at version 0 (issue 15, item 2).
        case fundedAsAgreed = "funded-as-agreed"
        /// A channel id is opened once: a replayed open proposal is refused, even after the
        /// channel closed and the node restarted (issue 15, item 3).
        case openedOnce = "opened-once"
    }

    struct Violation: Error, Sendable, CustomStringConvertible {
        let rule: Rule
        let detail: String
        var description: String { "\(rule.rawValue): \(detail)" }
    }

    let honest: PublicKey
    /// Every state the honest node signed, by channel and version (rule 1).
    private(set) var signed: [ChannelID: [UInt64: ChannelState]] = [:]
    /// States Mallory proposed, by channel and version: what an `accept` may have signed.
    private var proposedToHonest: [ChannelID: [UInt64: [ChannelState]]] = [:]
    /// The newest state the honest node reported committed, per channel (rule 2).
    private(set) var committed: [ChannelID: SignedState] = [:]
    /// The newest it reported committed while the chain could still take it (rule 3): not
    /// concluded, and no registration whose window closes too soon for the node to act
    /// (within its longest time away from the chain). A commitment the peer completes only
    /// after that (an accept withheld until the window closed) cannot be honoured by any
    /// protocol.
    private(set) var honourable: [ChannelID: SignedState] = [:]
    /// Channels the honest node reported opened (in its journal from then on).
    private(set) var opened: Set<ChannelID> = []
    /// The opening allocation the honest node signed (version 0), per channel.
    private(set) var openings: [ChannelID: Allocation] = [:]
    /// The honest node's seat, per channel, from the open proposal (whoever sent it).
    private(set) var seats: [ChannelID: ParticipantIndex] = [:]
    /// Channels the honest node reported closed (nothing of its own left in them).
    private(set) var closed: Set<ChannelID> = []
    /// Since when (and in which life of the node) each opened channel has been unfunded
    /// with the node up and the chain reachable (a restart or an outage starts the count
    /// again).
    private var unfundedSince: [ChannelID: (since: Duration, life: Int)] = [:]
    private(set) var violation: Violation?

    init(honest: PublicKey) {
        self.honest = honest
    }

    private mutating func fail(_ rule: Rule, _ detail: String) {
        if violation == nil { violation = Violation(rule: rule, detail: detail) }
    }

    mutating func report(_ violation: Violation) {
        if self.violation == nil { self.violation = violation }
    }

    // MARK: - Rule 1: never two states at one version

    /// A state carrying the honest node's signature left it (message or chain call).
    mutating func honestSigned(_ state: ChannelState, via: String) {
        let id = state.channelID
        if let earlier = signed[id]?[state.version], earlier != state {
            fail(
                .oneStatePerVersion,
                "the honest node signed two different states at version \(state.version) of channel \(id.shortID) "
                    + "(the second via \(via)): \(Self.describe(earlier)) and \(Self.describe(state))")
            return
        }
        signed[id, default: [:]][state.version] = state
        if state.version == 0 { openings[id] = state.allocation }
    }

    /// Every message the honest node sends, before the network touches it.
    mutating func honestSent(_ bytes: [UInt8]) {
        guard let message = try? ChannelMessage(wireBytes: bytes) else { return }
        switch message {
        case let .openProposal(proposal):
            if let seat = proposal.params.index(of: honest) { seats[proposal.params.id] = seat }
            if proposal.initial.isSigned(by: honest, with: proposal.signature) {
                honestSigned(proposal.initial, via: "open proposal")
            }
        case let .propose(state, signature):
            if state.isSigned(by: honest, with: signature) { honestSigned(state, via: "proposal") }
        case let .accept(id, version, signature):
            let candidates = proposedToHonest[id]?[version] ?? []
            if let state = candidates.first(where: { $0.isSigned(by: honest, with: signature) }) {
                honestSigned(state, via: "accept")
            }
        case let .openAccept(id, signature):
            let candidates = proposedToHonest[id]?[0] ?? []
            if let state = candidates.first(where: { $0.isSigned(by: honest, with: signature) }) {
                honestSigned(state, via: "open accept")
            }
        case let .commitProof(proof):
            for signature in proof.signatures.compactMap({ $0 }) where proof.state.isSigned(by: honest, with: signature) {
                honestSigned(proof.state, via: "commit proof")
            }
        case .reject, .reestablish:
            break
        }
    }

    /// Every message Mallory sends: the states an honest `accept` may refer to.
    mutating func malloryProposed(_ bytes: [UInt8]) {
        guard let message = try? ChannelMessage(wireBytes: bytes) else { return }
        switch message {
        case let .propose(state, _):
            proposedToHonest[state.channelID, default: [:]][state.version, default: []].append(state)
        case let .openProposal(proposal):
            proposedToHonest[proposal.params.id, default: [:]][0, default: []].append(proposal.initial)
            if let seat = proposal.params.index(of: honest) { seats[proposal.params.id] = seat }
        default:
            break
        }
    }

    /// A chain call by the honest node.
    mutating func honestSubmitted(_ submission: SimChainPort.Submission) {
        switch submission {
        case let .register(state):
            if state.signatures.compactMap({ $0 }).contains(where: { state.state.isSigned(by: honest, with: $0) }) {
                honestSigned(state.state, via: "register on chain")
            }
        case let .progress(state, signature):
            if state.isSigned(by: honest, with: signature) { honestSigned(state, via: "progress on chain") }
        }
    }

    // MARK: - Rule 2: what was reported committed survives every crash

    /// The node reported the channel open (version 0 signed by both). A second report for
    /// one id, in any life, means it accepted an open it had seen before.
    mutating func honestOpened(_ id: ChannelID) {
        if opened.contains(id) {
            fail(.openedOnce, "channel \(id.shortID) was opened a second time\(closed.contains(id) ? ", after the node reported it closed" : "") (a replayed open proposal was accepted)")
        }
        opened.insert(id)
    }

    mutating func honestClosed(_ id: ChannelID) { closed.insert(id) }

    /// The node reported `state` committed while the chain held `onChain` for its channel.
    /// Past version 0 the channel must be funded on the terms the node signed at version 0:
    /// else the update moves money that no state of the node's can ever pay out.
    mutating func honestCommitted(_ state: SignedState, onChain: ChannelOnChain?) {
        let id = state.state.channelID
        guard state.version > 0, let agreed = openings[id] else { return }
        guard let onChain else {
            fail(.fundedAsAgreed, "channel \(id.shortID) committed v\(state.version), but the chain has never heard of it")
            return
        }
        if onChain.opening != agreed || !onChain.isFunded {
            fail(
                .fundedAsAgreed,
                "channel \(id.shortID) committed v\(state.version) \(state.state.allocation), but the chain holds it "
                    + (onChain.isFunded ? "funded on an opening of \(onChain.opening)" : "unfunded (deposits \(onChain.deposits))")
                    + ", not the \(agreed) both sides signed at version 0")
        }
    }

    mutating func honestCommitted(_ state: SignedState, honourable canHonour: Bool) {
        let id = state.state.channelID
        if canHonour, (honourable[id]?.version ?? 0) < state.version || honourable[id] == nil { honourable[id] = state }
        if let known = committed[id], known.version >= state.version { return }
        committed[id] = state
    }

    /// After a restart: the journal the node recovered from holds everything reported before.
    mutating func checkRecovered(_ channels: [ChannelID: ChannelRecord]) {
        for id in opened.sorted(by: { $0.description < $1.description }) where channels[id] == nil {
            fail(.committedSurvivesCrash, "channel \(id.shortID) was reported open, but the journal lost it in a crash")
        }
        for (id, state) in committed.sorted(by: { $0.key.description < $1.key.description }) {
            guard let record = channels[id] else {
                fail(.committedSurvivesCrash, "channel \(id.shortID) committed version \(state.version), but the journal lost it")
                continue
            }
            let latest = record.latest
            if latest.version < state.version || (latest.version == state.version && latest.state != state.state) {
                fail(
                    .committedSurvivesCrash,
                    "channel \(id.shortID) reported version \(state.version) committed, the journal recovered "
                        + "version \(latest.version)\(latest.isFullySigned ? "" : " (not fully signed)")")
            }
        }
    }

    /// After every step: a channel open in the journal is funded, or given up (closed),
    /// within `limit` of the node and the chain being there to do it (issue 15, item 7: a
    /// channel whose funding never started, or failed, must not sit open at version 0).
    mutating func checkFunding(_ ledger: Ledger, now: Duration, life: Int, watching: Bool, limit: Duration) {
        for id in opened.sorted(by: { $0.description < $1.description }) where !closed.contains(id) {
            guard watching, ledger.channels[id]?.isFunded != true else {
                unfundedSince[id] = nil
                continue
            }
            let since = unfundedSince[id].flatMap { $0.life == life ? $0.since : nil } ?? now
            unfundedSince[id] = (since, life)
            if now - since > limit {
                let deposits = ledger.channels[id].map { "deposits \($0.deposits)" } ?? "no deposit"
                fail(
                    .liveness,
                    "channel \(id.shortID) has been open at version 0 and unfunded (\(deposits)) for \(now - since) "
                        + "with the node up and the chain reachable: it is neither funded nor given up")
                return
            }
        }
    }

    // MARK: - Rules 3 and 5: payouts

    /// The least the honest node must get from channel `id`: its balance in the newest state
    /// it reported committed, or in any newer state it signed (the peer holds that signature,
    /// so a payment the node proposed may count as made), whichever is smaller.
    func entitlement(_ id: ChannelID, seat: ParticipantIndex, opening: Allocation) -> Amount {
        let base = honourable[id]?.version ?? 0
        var least = honourable[id]?.state.allocation[seat] ?? opening[seat]
        for (version, state) in signed[id] ?? [:] where version >= base {
            least = min(least, state.allocation[seat])
        }
        return least
    }

    /// Total payouts never exceed deposits: every unit minted is in an account or a channel.
    mutating func checkConservation(_ ledger: Ledger) {
        let accounts = ledger.accounts.values.reduce(Amount(0)) { $0 &+ $1 }
        let held = ledger.channels.values.reduce(Amount(0)) { $0 &+ $1.holdings }
        if accounts &+ held != ledger.totalMinted {
            fail(.conservation, "accounts hold \(accounts) and channels \(held), but \(ledger.totalMinted) was minted")
        }
        for channel in ledger.channels.values {
            if let payout = channel.concludedAllocation, (payout.total ?? .max) > channel.fundedTotal {
                fail(.conservation, "channel \(channel.id.shortID) pays out \(payout) from \(channel.fundedTotal) deposited")
            }
        }
    }

    /// At the end: every channel of the honest node is settled, and it got its due.
    mutating func checkSettled(_ ledger: Ledger, bound: Duration) {
        // A channel open in the journal (version 0 signed by both) is funded with the
        // honest share, or given up: never left at version 0 with the peer's deposit locked
        // in it and the node waiting for nothing (issue 15, item 7).
        for id in opened.sorted(by: { $0.description < $1.description }) where !closed.contains(id) {
            guard let seat = seats[id], let agreed = openings[id], agreed[seat] > 0 else { continue }
            let onChain = ledger.channels[id]
            if onChain?.isFunded == true || (onChain?.deposits[seat] ?? 0) >= agreed[seat] { continue }
            fail(
                .liveness,
                "channel \(id.shortID) has been open since version 0, but \(bound) after Mallory stopped the honest node "
                    + "has neither deposited its \(agreed[seat]) nor given the channel up "
                    + "(the chain holds \(onChain.map { "deposits \($0.deposits)" } ?? "no record"))")
        }
        for channel in ledger.channels.values.sorted(by: { $0.id.description < $1.id.description }) {
            guard let seat = channel.params.index(of: honest) else { continue }
            if !channel.isFunded {
                if channel.deposits[seat] > 0 {
                    fail(.liveness, "channel \(channel.id.shortID) never funded, and the honest deposit of \(channel.deposits[seat]) is still in it \(bound) after Mallory stopped")
                }
                continue
            }
            let due = entitlement(channel.id, seat: seat, opening: openings[channel.id] ?? channel.opening)
            // A channel funded on other terms than agreed holds nothing of ours (we never
            // deposit into one) and none of our states can settle it.
            if channel.deposits[seat] == 0 && channel.concludedAllocation == nil
                && (due == 0 || channel.opening != openings[channel.id])
            {
                continue
            }
            // Funded, but nothing of ours is in it any more (we paid our whole balance): the
            // node rightly does not spend a dispute on it.
            if channel.concludedAllocation == nil && due == 0 && channel.params.appID != TicTacToe.id { continue }
            guard let payout = channel.concludedAllocation, channel.withdrawn.contains(seat) || payout[seat] == 0 else {
                fail(.liveness, "channel \(channel.id.shortID) still holds the honest node's money \(bound) after Mallory stopped (phase \(channel.phase))")
                continue
            }
            if channel.params.appID == TicTacToe.id {
                checkGame(channel, seat: seat, payout: payout)
                continue
            }
            if payout[seat] < due {
                fail(.payoutAtLeastCommitted, "channel \(channel.id.shortID) paid the honest node \(payout[seat]), but it had committed to no less than \(due)")
            }
        }
    }

    /// A game ends as its rules say: from a state at least as new as the newest the honest
    /// player committed; final only if the honest player signed it; never by the honest
    /// player's forfeit (it always moves on chain in time); paid as the rules' outcome.
    private mutating func checkGame(_ channel: ChannelOnChain, seat: ParticipantIndex, payout: Allocation) {
        let id = channel.id
        guard let settled = channel.registeredState else {
            fail(.payoutAtLeastCommitted, "game \(id.shortID) concluded with no state registered")
            return
        }
        let rules = TicTacToe()
        if let newest = honourable[id], settled.version < newest.version {
            fail(.payoutAtLeastCommitted, "game \(id.shortID) settled at v\(settled.version), older than v\(newest.version) the honest player committed")
        }
        if settled.isFinal {
            if signed[id]?[settled.version] != settled {
                fail(.payoutAtLeastCommitted, "game \(id.shortID) settled with a final state the honest player never signed: \(Self.describe(settled))")
            }
            if payout != settled.allocation {
                fail(.conservation, "game \(id.shortID) paid \(payout), not the final state's \(settled.allocation)")
            }
            return
        }
        if rules.mover(in: settled) == seat {
            fail(.liveness, "game \(id.shortID): the honest player forfeited at v\(settled.version), though it moves on chain whenever it is its turn")
        }
        if payout != rules.outcome(of: settled) {
            fail(.conservation, "game \(id.shortID) paid \(payout), not the rules' outcome \(rules.outcome(of: settled)) of v\(settled.version)")
        }
    }

    static func describe(_ state: ChannelState) -> String {
        "v\(state.version) \(state.allocation)\(state.isFinal ? " final" : "")"
    }
}
