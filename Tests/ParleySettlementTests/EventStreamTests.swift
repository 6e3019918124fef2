import ParleyChannel
import ParleyWire
import ParleyCrypto
import ParleyLocks
import ParleySettlement
import Testing

/// Chain events: order, exactly-once delivery and resubscription, against every backend.
@Suite struct EventStreamTests {
    /// The first `count` events of `stream`; fails instead of hanging if they do not all
    /// arrive, saying which sequence numbers did (a gap and a slow chain look different).
    static func collect(
        _ stream: AsyncThrowingStream<ChainEvent, any Error>, count: Int, timeout: Duration = .seconds(20)
    ) async throws -> [ChainEvent] {
        let seen = Locked<[ChainEvent]>([])
        let complete = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for try await event in stream {
                    if seen.withLock({ $0.append(event); return $0.count }) == count { return true }
                }
                return false
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        let events = seen.withLock { $0 }
        if !complete {
            let sequences = events.map(\.sequence)
            let gaps = zip(sequences, sequences.dropFirst()).filter { $1 != $0 + 1 }.map { "\($0)→\($1)" }
            Issue.record(
                "\(events.count) of \(count) events arrived within \(timeout) (first \(sequences.first.map(String.init) ?? "-"), last \(sequences.last.map(String.init) ?? "-"), gaps: \(gaps.isEmpty ? "none" : gaps.joined(separator: ", ")))")
            throw IncompleteStream()
        }
        return events
    }

    struct IncompleteStream: Error {}

    /// A whole channel life; returns the events each call reported, in call order.
    static func lifecycle(_ s: Scenario) async throws -> [ChainEvent] {
        var events: [ChainEvent] = []
        try await s.mintOpening()
        events += try await s.deposit(.first, 100)
        events += try await s.deposit(.second, 50)
        events += try await s.alice.register(s.signed(s.state(1)))
        events += try await s.bob.register(s.signed(s.state(2, (60, 90))))
        try await s.chain.advance(Scenario.challenge)
        events += try await s.bob.conclude(s.params.id)
        events += try await s.alice.withdraw(s.params.id, participant: .first)
        events += try await s.bob.withdraw(s.params.id, participant: .second)
        return events
    }

    @Test(arguments: Backend.allCases)
    func subscriberSeesEveryEventInChainOrderOnce(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        let live = s.alice.events(after: 0)
        let reported = try await Self.lifecycle(s)
        #expect(try await s.ordinals(reported) == Array(1...8))
        #expect(reported.map(\.kind) == [
            .deposited(participant: .first, amount: 100, totalDeposited: 100),
            .deposited(participant: .second, amount: 50, totalDeposited: 50), .funded,
            .registered(version: 1, deadline: ChainTime(seconds: 60), by: .first),
            .registered(version: 2, deadline: ChainTime(seconds: 60), by: .second),
            .concluded(version: 2, allocation: Allocation(60, 90)),
            .withdrawn(participant: .first, amount: 60), .withdrawn(participant: .second, amount: 90),
        ])
        #expect(try await Self.collect(live, count: 8) == reported)
        // A late subscriber gets the same history from the log.
        #expect(try await Self.collect(s.bob.events(after: 0), count: 8) == reported)
    }

    @Test(arguments: Backend.allCases)
    func resubscribingFromTheLastSequenceSeenMissesNothingAndRepeatsNothing(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        let first = s.alice.events(after: 0)
        try await s.mintOpening()
        try await s.deposit(.first, 100)
        try await s.deposit(.second, 50)
        let seen = try await Self.collect(first, count: 2)
        let last = try #require(seen.last?.sequence)
        try await s.alice.register(s.signed(s.state(1)))
        let resumed = try await Self.collect(s.alice.events(after: last), count: 2)
        #expect(try await s.ordinals(resumed) == [3, 4])
        #expect(resumed.map(\.kind) == [.funded, .registered(version: 1, deadline: ChainTime(seconds: 60), by: .first)])
        // Nothing after the newest event: the stream waits for the next one.
        let tail = s.alice.events(after: try #require(resumed.last?.sequence))
        try await s.bob.register(s.signed(s.state(2)))
        let next = try await Self.collect(tail, count: 1)
        #expect(try await s.ordinals(next) == [5])
    }

    @Test(arguments: Backend.allCases)
    func subscribingWhileEventsAreAppendedLeavesNoGapAndNoDuplicate(_ backend: Backend) async throws {
        // The local EVM mines about one deposit (approve and deposit) a second: 40 there.
        let chain = try await backend.makeChain()
        let deposits = chain.gapFreeSequences ? 400 : 40
        let s = try Scenario(chain, opening: Allocation(Amount(deposits), 0))
        try await s.mintOpening()
        let total = deposits + 1  // the last deposit also emits `funded`
        let writer = Task {
            for _ in 0..<deposits { try await s.deposit(.first, 1) }
        }
        // A full subscription from the start; each round subscribes after an event it has
        // seen (whatever point the writer has reached) and must get exactly the rest.
        let full = Task { try await Self.collect(s.alice.events(after: 0), count: total, timeout: .seconds(120)) }
        var rounds: [(position: Int, events: [ChainEvent])] = []
        for round in 0..<20 {
            let position = round * deposits / 25
            let after: UInt64
            if position == 0 {
                after = 0
            } else {
                // The position-th event, read from the chain's history (it exists by now on
                // every chain: positions below the writer's progress, waited for if not).
                after = try await Self.collect(s.bob.events(after: 0), count: position, timeout: .seconds(90)).last?.sequence ?? 0
            }
            // Round 0 waits for all 400 deposits, each a durable devchain transaction: about
            // 2 s alone, over 20 s when another test run shares the disk and cores.
            let events = try await Self.collect(s.bob.events(after: after), count: total - position, timeout: .seconds(90))
            rounds.append((position, events))
        }
        try await writer.value
        let history = try await full.value
        for (position, events) in rounds {
            #expect(events == Array(history[position...]), "subscribed after event \(position)")
        }
        if s.chain.gapFreeSequences { #expect(history.map(\.sequence) == Array(1...UInt64(total))) }
        #expect(rounds.count == 20)
    }
}

/// Subscription bookkeeping that only the embedded chain exposes.
@Suite struct LocalChainSubscriptionTests {
    @Test func cancelledSubscribersAreDropped() async throws {
        let chain = LocalChain()
        let stream = chain.events(after: 0)
        #expect(chain.subscriberCount == 1)
        let reader = Task { for try await _ in stream {} }
        reader.cancel()
        _ = await reader.result
        for _ in 0..<100 where chain.subscriberCount != 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(chain.subscriberCount == 0)
    }

    @Test func clockMovesOnlyForwardAndOnlyWhenTold() {
        let chain = LocalChain()
        #expect(chain.now == .zero)
        chain.advance(by: 30)
        chain.advance(to: ChainTime(seconds: 10))
        #expect(chain.now == ChainTime(seconds: 30))
        chain.advance(to: ChainTime(seconds: 45))
        chain.advance(by: .max)
        #expect(chain.now == ChainTime(seconds: .max))
        #expect(ChainTime(seconds: 5) + 7 == ChainTime(seconds: 12))
    }
}
