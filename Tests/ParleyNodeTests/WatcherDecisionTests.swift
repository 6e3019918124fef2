import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyJournal
@testable import ParleyNode
@testable import ParleySettlement

/// `WatcherStep.decide` is the watcher's whole judgement; these tests check it against the
/// invariants directly, over every combination a seeded generator reaches.
@Suite struct WatcherDecisionTests {
    static let cases = 20_000
    static let keys = [SigningKey(), SigningKey()]

    /// `PARLEY_WATCHER_SEED` replays one failing run.
    static let seed: UInt64 = ProcessInfo.processInfo.environment["PARLEY_WATCHER_SEED"].flatMap(UInt64.init)
        ?? UInt64.random(in: .min ... .max)

    struct Situation: CustomStringConvertible {
        var chain: ChannelOnChain?
        var record: ChannelRecord
        var me: ParticipantIndex
        var now: ChainTime
        var exitRequested: Bool
        /// A deposit of ours was submitted and has not answered.
        var depositInFlight = false

        var description: String {
            let registered = chain?.registeredVersion.map(String.init) ?? "none"
            return "chain funded=\(chain?.isFunded ?? false) registered=\(registered) deadline=\(chain?.deadline?.seconds ?? 0) "
                + "now=\(now.seconds) concluded=\(String(describing: chain?.concludedAllocation)) "
                + "withdrawn=\(chain?.withdrawn ?? []) latest=v\(record.latest.version) signed=\(record.latest.isFullySigned) "
                + "final=\(record.latest.state.isFinal) closed=\(record.isClosed) dispute=\(String(describing: record.dispute)) "
                + "me=\(me) exit=\(exitRequested) depositing=\(depositInFlight)"
        }
    }

    static func situation(_ random: inout SeededRandom) throws -> Situation {
        let params = try ChannelParams(
            participants: keys.map(\.publicKey), nonce: [UInt8](repeating: 7, count: ChannelParams.nonceBytes),
            challengeDuration: 10)
        let opening = Allocation(50, 50)
        // Now and then the peer's deposit fixed other terms than we agreed.
        let onChain = Int.random(in: 0..<8, using: &random) == 0 ? Allocation(60, 40) : opening
        var chain: ChannelOnChain? = ChannelOnChain(params: params, opening: onChain, fundedTotal: 100)
        if Bool.random(using: &random) {
            chain?.isFunded = true
            chain?.deposits = onChain
        } else {
            // Not funded: our deposit may be in, and the peer may have taken its own back.
            for seat in ParticipantIndex.allCases where Bool.random(using: &random) { chain?.deposits[seat] = onChain[seat] }
            chain?.depositsClosed = Bool.random(using: &random)
        }
        if chain?.isFunded == true, Bool.random(using: &random) {
            let registered = UInt64.random(in: 0...8, using: &random)
            chain?.registeredState = ChannelState(channelID: params.id, version: registered, allocation: opening)
            chain?.deadline = ChainTime(seconds: 100)
            chain?.phase = .disputed
            // A move made on chain: signed by its mover alone, its app data our state does not have.
            if Bool.random(using: &random) {
                chain?.isProgressed = true
                chain?.registeredState?.appData = [1]
            }
            if Int.random(in: 0..<3, using: &random) == 0 {
                let first = Amount(UInt64.random(in: 0...100, using: &random))
                chain?.concludedAllocation = Allocation(first, 100 - first)
                chain?.phase = .concluded
                for seat in ParticipantIndex.allCases where Bool.random(using: &random) { chain?.withdrawn.insert(seat) }
            }
        }
        if Int.random(in: 0..<8, using: &random) == 0 { chain = nil }
        let version = UInt64.random(in: 0...10, using: &random)
        let state = ChannelState(
            channelID: params.id, version: version, allocation: opening,
            isFinal: Int.random(in: 0..<5, using: &random) == 0)
        var latest = SignedState(state: state, signatures: keys.map { state.signed(by: $0) })
        if Int.random(in: 0..<6, using: &random) == 0 { latest[.second] = nil }
        let disputes: [DisputeEvent?] = [
            nil, .registered(version: 1, deadline: 100), .refuted(version: 3), .concluded(version: 3), .withdrawn(amount: 5),
        ]
        let record = ChannelRecord(
            params: params, funding: opening, latest: latest, highestSignedVersion: version, pending: nil,
            signedFinal: nil, exit: nil, dispute: disputes.randomElement(using: &random) ?? nil, isClosed: Int.random(in: 0..<6, using: &random) == 0)
        return Situation(
            chain: chain, record: record, me: Bool.random(using: &random) ? .first : .second,
            now: ChainTime(seconds: UInt64.random(in: 97...103, using: &random)), exitRequested: Bool.random(using: &random),
            depositInFlight: Int.random(in: 0..<4, using: &random) == 0)
    }

    @Test func everyStepIsAllowedByTheRulesAndNoDutyIsSkipped() throws {
        print("WatcherDecisionTests seed \(Self.seed) (replay: PARLEY_WATCHER_SEED=\(Self.seed))")
        var random = SeededRandom(seed: Self.seed)
        var stepsSeen: Set<String> = []
        for index in 0..<Self.cases {
            let s = try Self.situation(&random)
            let step = WatcherStep.decide(
                chain: s.chain, record: s.record, me: s.me, now: s.now, exitRequested: s.exitRequested,
                depositInFlight: s.depositInFlight)
            stepsSeen.insert("\(step)".prefix { $0 != "(" }.description)
            let context = Comment(rawValue: "case \(index), seed \(Self.seed): \(s) → \(step)")
            let chain = s.chain
            let concluded = chain?.concludedAllocation
            let windowOpen = chain?.isWindowOpen(at: s.now) ?? false
            let latest = s.record.latest
            let registeredVersion = chain?.registeredVersion ?? .max
            let canRefute = chain?.opening == s.record.funding && latest.isFullySigned && concluded == nil && windowOpen
                && (latest.version > registeredVersion
                    || (latest.version == registeredVersion && chain?.isProgressed == true
                        && chain?.registeredState != latest.state))

            switch step {
            case let .register(state, _):
                // Only funded, unconcluded channels; only fully-signed states; only newer ones, in the window.
                #expect(chain?.isFunded == true && concluded == nil && state.isFullySigned, context)
                if let registered = chain?.registeredVersion {
                    // Newer, or the same version fully signed over a move made on chain.
                    let replacesAMove = state.version == registered && chain?.isProgressed == true
                    #expect(windowOpen && (state.version > registered || replacesAMove), context)
                }
            case .conclude:
                #expect(chain?.registeredVersion != nil && !windowOpen && concluded == nil, context)
            case let .withdraw(amount):
                #expect(concluded.map { $0[s.me] } == amount && amount > 0, context)
                #expect(chain?.withdrawn.contains(s.me) == false, context)
            case .reclaim:
                // Only our own money, only from a channel never funded, only when we want out.
                #expect(chain?.isFunded == false && s.exitRequested && !s.record.isClosed, context)
                #expect((chain?.deposits[s.me] ?? 0) > 0, context)
            case .markClosed:
                let matches = chain?.opening == s.record.funding
                let nothingOfOursLeft = s.exitRequested && (chain?.deposits[s.me] ?? 0) == 0
                    && (chain?.isFunded != true || !matches)
                #expect(concluded != nil || nothingOfOursLeft, context)
                // Never while a deposit of ours may still land in an unfunded channel.
                if chain?.isFunded != true { #expect(!s.depositInFlight, context) }
                #expect(!s.record.isClosed, context)
                if let concluded, concluded[s.me] > 0 {
                    #expect(chain?.withdrawn.contains(s.me) == true, "closed before the payout arrived: \(context)")
                }
            case .waitUntil, .idle:
                // Invariant 4: never sit still while an older state is registered and ours could answer it.
                #expect(!canRefute, "a refutation was possible: \(context)")
                // Even from a channel the journal holds closed: the chain is what counts.
                if let concluded, concluded[s.me] > 0 {
                    #expect(chain?.withdrawn.contains(s.me) == true, "our payout was left behind: \(context)")
                }
                // An unfunded channel we leave gives our deposit back, whatever the funding timer did.
                if s.exitRequested, chain?.isFunded == false, (chain?.deposits[s.me] ?? 0) > 0, !s.record.isClosed {
                    Issue.record("we want out of an unfunded channel and left our deposit in it: \(context)")
                }
                // An unfunded channel we leave with nothing of ours in it (and none on its
                // way) is closed, not left open for ever at version 0.
                if s.exitRequested, chain?.isFunded != true, (chain?.deposits[s.me] ?? 0) == 0, !s.record.isClosed,
                    !s.depositInFlight
                {
                    Issue.record("we want out of an unfunded channel holding nothing of ours and did not close it: \(context)")
                }
                // Invariant 5: an exit we asked for starts as soon as the channel is funded (as agreed).
                if s.exitRequested, chain?.isFunded == true, chain?.opening == s.record.funding,
                    chain?.registeredVersion == nil, latest.isFullySigned
                {
                    Issue.record("an exit was requested but nothing was registered: \(context)")
                }
            }
        }
        #expect(stepsSeen == ["register", "conclude", "withdraw", "reclaim", "markClosed", "waitUntil", "idle"], "\(stepsSeen)")
    }

    @Test func anOlderRegistrationIsAnsweredWithOurLatestInTheWindowsLastSecond() throws {
        var random = SeededRandom(seed: 1)
        var s = try Self.situation(&random)
        let params = s.record.params
        var chain = ChannelOnChain(params: params, opening: Allocation(50, 50), fundedTotal: 100)
        chain.isFunded = true
        chain.registeredState = ChannelState(channelID: params.id, version: 2, allocation: Allocation(50, 50))
        chain.deadline = ChainTime(seconds: 100)
        chain.phase = .disputed
        let state = ChannelState(channelID: params.id, version: 5, allocation: Allocation(40, 60))
        s.record.latest = SignedState(state: state, signatures: Self.keys.map { state.signed(by: $0) })
        s.record.isClosed = false
        let lastSecond = WatcherStep.decide(
            chain: chain, record: s.record, me: .second, now: ChainTime(seconds: 99), exitRequested: false)
        #expect(lastSecond == .register(s.record.latest, because: .refute(registered: 2)))
        let closed = WatcherStep.decide(
            chain: chain, record: s.record, me: .second, now: ChainTime(seconds: 100), exitRequested: false)
        #expect(closed == .conclude)
    }

    @Test func aMoveOnChainAtOurVersionIsReplacedByOurFullySignedState() throws {
        var random = SeededRandom(seed: 2)
        var s = try Self.situation(&random)
        let params = s.record.params
        var chain = ChannelOnChain(params: params, opening: Allocation(50, 50), fundedTotal: 100)
        chain.isFunded = true
        chain.registeredState = ChannelState(channelID: params.id, version: 5, allocation: Allocation(50, 50), appData: [9])
        chain.isProgressed = true
        chain.deadline = ChainTime(seconds: 100)
        chain.phase = .disputed
        let state = ChannelState(channelID: params.id, version: 5, allocation: Allocation(40, 60))
        s.record.latest = SignedState(state: state, signatures: Self.keys.map { state.signed(by: $0) })
        s.record.isClosed = false
        let step = WatcherStep.decide(chain: chain, record: s.record, me: .first, now: ChainTime(seconds: 50), exitRequested: false)
        #expect(step == .register(s.record.latest, because: .refute(registered: 5)))
        // The same state registered with both signatures is not answered again.
        chain.registeredState = state
        chain.isProgressed = false
        let settled = WatcherStep.decide(chain: chain, record: s.record, me: .first, now: ChainTime(seconds: 50), exitRequested: false)
        #expect(settled == .waitUntil(ChainTime(seconds: 100)))
    }
}
