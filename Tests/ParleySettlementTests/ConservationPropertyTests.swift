import Foundation
import ParleyChannel
import ParleyGames
import ParleyCrypto
import ParleySettlement
import ParleyWire
import Testing

/// Random transaction sequences against the adjudicator.
///
/// Prints its seed; replay a failure with `PARLEY_CHAIN_SEED=<seed> swift test --filter ConservationPropertyTests`.
@Suite struct ConservationPropertyTests {
    static let runs = 60
    static let steps = 250

    /// Fixed seeds that are known to reach every event kind, so the coverage check below
    /// never depends on luck.
    static let fixedSeeds: [UInt64] = Array(1...UInt64(runs / 2))

    /// `PARLEY_CHAIN_SEED` if set (replays one run), otherwise the fixed seeds plus as many
    /// fresh random ones.
    static func seeds() -> [UInt64] {
        if let text = ProcessInfo.processInfo.environment["PARLEY_CHAIN_SEED"], let seed = UInt64(text) {
            return [seed]
        }
        var master = SeededRandom(seed: UInt64.random(in: .min ... .max))
        return fixedSeeds + (0..<runs - fixedSeeds.count).map { _ in master.next() }
    }

    /// Money on the ledger: every account plus every channel's holdings.
    static func money(_ ledger: Ledger) -> Amount {
        ledger.accounts.values.reduce(0, +) + ledger.channels.values.reduce(0) { $0 + $1.holdings }
    }

    @Test func moneyIsConservedAndRefusedTransactionsChangeNothing() throws {
        var kindsSeen: Set<String> = []
        var refusalsSeen: Set<String> = []
        let seeds = Self.seeds()
        for seed in seeds {
            print("ConservationPropertyTests seed \(seed) (replay: PARLEY_CHAIN_SEED=\(seed))")
            var rng = SeededRandom(seed: seed)
            var adjudicator = Adjudicator(apps: [CounterApp()])
            var applied: [(ChainTransaction, PublicKey, ChainTime)] = []
            var now = ChainTime.zero
            for step in 0..<Self.steps {
                now = now + (rng.chance(20) ? rng.below(8) : 0)
                let (tx, caller) = RandomChain.transaction(&rng, adjudicator)
                let before = adjudicator.ledger
                do {
                    let events = try adjudicator.apply(tx, caller: caller.publicKey, now: now)
                    applied.append((tx, caller.publicKey, now))
                    #expect(Array(adjudicator.ledger.events.suffix(events.count)) == events, "seed \(seed) step \(step)")
                    #expect(before.events.count + events.count == adjudicator.ledger.events.count)
                    for event in events { kindsSeen.insert(Mirror(reflecting: event.kind).children.first?.label ?? "\(event.kind)") }
                } catch {
                    #expect(adjudicator.ledger == before, "refused \(tx) changed the ledger: seed \(seed) step \(step)")
                    refusalsSeen.insert(Mirror(reflecting: error).children.first?.label ?? "\(error)")
                }
                #expect(Self.money(adjudicator.ledger) == adjudicator.ledger.totalMinted, "seed \(seed) step \(step)")
                let sequences = adjudicator.ledger.events.map(\.sequence)
                #expect(sequences.last.map { $0 == UInt64(sequences.count) } ?? true, "seed \(seed)")
            }
            // The devchain daemon restarts by replaying what it applied: same transactions, same ledger.
            var replayed = Adjudicator(apps: [CounterApp()])
            for (tx, caller, time) in applied { _ = try replayed.apply(tx, caller: caller, now: time) }
            #expect(replayed.ledger == adjudicator.ledger, "replay diverged: seed \(seed)")
        }
        print("ConservationPropertyTests covered events \(kindsSeen.sorted()) and refusals \(refusalsSeen.sorted())")
        // Guard against a generator that only ever hits the first check.
        if seeds.count > 1 {
            #expect(kindsSeen.count == 7, "event kinds seen: \(kindsSeen.sorted())")
            #expect(refusalsSeen.count >= 18, "refusals seen: \(refusalsSeen.sorted())")
        }
    }
}
