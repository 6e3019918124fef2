import ParleyNode
import ParleySettlement
import ParleySim
import ParleyTestSupport
import Synchronization
import Testing

// `SimScheduler` itself is not tested here: its hook is process-wide and this process runs
// tests in parallel on the real executor. `SimSelfTest` checks it in a process of its own
// (`parley sim --self-test`). What follows runs on the ordinary executor, threads and all,
// so it also exercises the clock's locking and races.

/// One serial place for sleepers to record their wake-ups: resumed continuations enqueue
/// their tasks on this actor in resume order, so the record shows the order `fireDue` chose.
@globalActor
private actor WakeRecorder {
    static let shared = WakeRecorder()
}

/// Starts a task sleeping `duration` on `clock` and returns once its timer is registered,
/// so sleeps started one after another get their sequence in that order.
private func startSleeper(
    _ clock: some NodeClock, _ duration: Duration, on registry: VirtualClock,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Task<Result<Duration, CancellationError>, Never> {
    let before = registry.pendingSleepers
    let task = Task { @WakeRecorder in
        do {
            try await clock.sleep(for: duration)
            return Result<Duration, CancellationError>.success(clock.now)
        } catch {
            return .failure(CancellationError())
        }
    }
    try #require(await eventually { registry.pendingSleepers == before + 1 }, sourceLocation: sourceLocation)
    return task
}

/// Names in the order their sleepers woke.
private final class WakeLog: Sendable {
    private let names = Mutex<[String]>([])

    func append(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
}

@Suite struct VirtualClockTests {
    @Test func sleepersWakeInDeadlineOrderAndEqualDeadlinesInTheOrderTheySlept() async throws {
        let clock = VirtualClock()
        let woken = WakeLog()
        var tasks: [Task<Void, Never>] = []
        for (name, seconds) in [("c", 3), ("a1", 1), ("b", 2), ("a2", 1)] {
            let before = clock.pendingSleepers
            tasks.append(Task { @WakeRecorder in
                try? await clock.sleep(for: .seconds(seconds))
                woken.append(name)
            })
            try #require(await eventually { clock.pendingSleepers == before + 1 })
        }
        #expect(clock.nextDeadline == .seconds(1))
        clock.advance(to: .seconds(3))
        #expect(clock.fireDue() == 4)
        for task in tasks { await task.value }
        #expect(woken.all == ["a1", "a2", "b", "c"])
    }

    @Test func aSleepWakesAtItsDeadlineAndNotBefore() async throws {
        let clock = VirtualClock()
        let sleeper = try await startSleeper(clock, .seconds(5), on: clock)
        clock.advance(to: .seconds(5) - .nanoseconds(1))
        #expect(clock.fireDue() == 0)
        #expect(clock.pendingSleepers == 1)
        clock.advance(to: .seconds(5))
        #expect(clock.fireDue() == 1)
        #expect(try await sleeper.value.get() == .seconds(5))
        #expect(clock.nextDeadline == nil)
    }

    @Test func zeroAndNegativeSleepsSuspendUntilTheNextFire() async throws {
        let clock = VirtualClock()
        clock.advance(to: .seconds(7))
        let zero = try await startSleeper(clock, .zero, on: clock)
        let negative = try await startSleeper(clock, .seconds(-3), on: clock)
        // Registered, still waiting: neither returned inline.
        #expect(clock.pendingSleepers == 2)
        #expect(clock.nextDeadline == .seconds(7))
        #expect(clock.fireDue() == 2)
        #expect(try await zero.value.get() == .seconds(7))
        #expect(try await negative.value.get() == .seconds(7))
    }

    @Test func cancellingASleeperResumesItOnceWithCancellationError() async throws {
        let clock = VirtualClock()
        let sleeper = try await startSleeper(clock, .seconds(10), on: clock)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value.get() }
        #expect(clock.pendingSleepers == 0)
        #expect(clock.nextDeadline == nil)
        clock.advance(to: .seconds(10))
        #expect(clock.fireDue() == 0)
    }

    @Test func aSleepStartedByACancelledTaskThrowsWithoutWaiting() async throws {
        let clock = VirtualClock()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(for: .seconds(1))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.pendingSleepers == 0)
        #expect(clock.nextDeadline == nil)
    }

    /// Cancellation and firing from two threads at once, many times: every sleeper ends
    /// exactly once (a second resume of its checked continuation would trap) and with one
    /// of the two outcomes.
    @Test func cancellationRacingTheTimerResumesExactlyOnce() async throws {
        var outcomes = (woke: 0, cancelled: 0)
        for _ in 0..<300 {
            let clock = VirtualClock()
            let sleeper = try await startSleeper(clock, .seconds(1), on: clock)
            let fire = Task.detached {
                clock.advance(to: .seconds(1))
                return clock.fireDue()
            }
            let cancel = Task.detached { sleeper.cancel() }
            let fired = await fire.value
            await cancel.value
            switch await sleeper.value {
            case .success(let now):
                #expect(fired == 1 && now == .seconds(1))
                outcomes.woke += 1
            case .failure:
                #expect(fired == 0)
                outcomes.cancelled += 1
            }
            #expect(clock.pendingSleepers == 0)
        }
        #expect(outcomes.woke + outcomes.cancelled == 300)
    }

    @Test func cancelledTimersAreSkippedByNextDeadline() async throws {
        let clock = VirtualClock()
        let early = try await startSleeper(clock, .seconds(1), on: clock)
        let late = try await startSleeper(clock, .seconds(2), on: clock)
        early.cancel()
        _ = await early.value
        #expect(clock.nextDeadline == .seconds(2))
        clock.advance(to: .seconds(2))
        #expect(clock.fireDue() == 1)
        #expect(try await late.value.get() == .seconds(2))
    }

    @Test func killingAnIncarnationUnwindsItsSleepersAndOnlyThem() async throws {
        let clock = VirtualClock()
        let old = clock.view(incarnation: 1)
        let other = clock.view(incarnation: 2)
        let oldSleepers = [
            try await startSleeper(old, .seconds(5), on: clock),
            try await startSleeper(old, .seconds(50), on: clock),
        ]
        let otherSleeper = try await startSleeper(other, .seconds(5), on: clock)
        let bareSleeper = try await startSleeper(clock, .seconds(6), on: clock)

        #expect(clock.kill(incarnation: 1) == 2)
        #expect(clock.isKilled(incarnation: 1) && !clock.isKilled(incarnation: 2))
        for sleeper in oldSleepers {
            await #expect(throws: CancellationError.self) { try await sleeper.value.get() }
        }
        #expect(clock.pendingSleepers == 2)
        // A task of the dead life that tries to sleep again is turned away at once.
        await #expect(throws: CancellationError.self) { try await old.sleep(for: .seconds(1)) }
        #expect(clock.pendingSleepers == 2)

        clock.advance(to: .seconds(6))
        #expect(clock.fireDue() == 2)
        #expect(try await otherSleeper.value.get() == .seconds(6))
        #expect(try await bareSleeper.value.get() == .seconds(6))
    }

    @Test func cancelAllUnwindsEverySleeperButLaterSleepsStillWork() async throws {
        let clock = VirtualClock()
        let sleepers = [
            try await startSleeper(clock.view(incarnation: 4), .seconds(3), on: clock),
            try await startSleeper(clock, .seconds(9), on: clock),
        ]
        #expect(clock.cancelAll() == 2)
        for sleeper in sleepers {
            await #expect(throws: CancellationError.self) { try await sleeper.value.get() }
        }
        let later = try await startSleeper(clock.view(incarnation: 4), .seconds(1), on: clock)
        clock.advance(by: .seconds(1))
        #expect(clock.fireDue() == 1)
        #expect(try await later.value.get() == .seconds(1))
    }

    @Test func timeNeverRunsBackwards() {
        let clock = VirtualClock()
        clock.advance(to: .seconds(10))
        clock.advance(to: .seconds(4))
        #expect(clock.now == .seconds(10))
        clock.advance(by: .milliseconds(250))
        #expect(clock.now == .milliseconds(10_250))
    }

    @Test func aLinkedChainFollowsWholeVirtualSeconds() {
        let chain = LocalChain()
        chain.advance(to: ChainTime(seconds: 100))
        let clock = VirtualClock(chain: chain)
        clock.advance(to: .milliseconds(999))
        #expect(chain.now == ChainTime(seconds: 100))
        clock.advance(to: .seconds(1))
        #expect(chain.now == ChainTime(seconds: 101))
        clock.advance(to: .milliseconds(2_500))
        #expect(chain.now == ChainTime(seconds: 102))
        clock.advance(to: .milliseconds(2_900))
        #expect(chain.now == ChainTime(seconds: 102))
        clock.advance(to: .seconds(3_600))
        #expect(chain.now == ChainTime(seconds: 3_700))
    }

    @Test func aChainMovedAheadByOthersIsNeverPulledBack() {
        let chain = LocalChain()
        let clock = VirtualClock(chain: chain)
        chain.advance(to: ChainTime(seconds: 500))
        clock.advance(to: .seconds(10))
        #expect(chain.now == ChainTime(seconds: 500))
    }
}

@Suite struct SimRandomTests {
    /// Pins the stream: SplitMix64 from seed 42. A change here replays no old seed.
    @Test func aSeedGivesTheSplitMix64Stream() {
        let random = SimRandom(seed: 42)
        let expected: [UInt64] = [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103, 0x4752_6757_130F_9F52]
        #expect([random.next(), random.next(), random.next()] == expected)
    }

    @Test func theSameSeedGivesTheSameDraws() {
        func draws(_ random: SimRandom) -> [Int] {
            random.bytes(13).map(Int.init) + (0..<50).map { _ in random.integer(in: -7...1_000) }
        }
        #expect(draws(SimRandom(seed: 9)) == draws(SimRandom(seed: 9)))
        #expect(draws(SimRandom(seed: 9)) != draws(SimRandom(seed: 10)))
    }

    @Test func aForkDependsOnItsLabelAndTheSeedButNotOnDrawsSoFar() {
        let quiet = SimRandom(seed: 5)
        let busy = SimRandom(seed: 5)
        let busyFirst = busy.fork(label: "journal")
        for _ in 0..<1_000 { _ = busy.next() }
        _ = busyFirst.bytes(4_096)

        let fromQuiet = quiet.fork(label: "network")
        let fromBusy = busy.fork(label: "network")
        let expected = (0..<20).map { _ in fromQuiet.next() }
        #expect((0..<20).map { _ in fromBusy.next() } == expected)

        let otherLabel = quiet.fork(label: "journal")
        let otherSeed = SimRandom(seed: 6).fork(label: "network")
        #expect((0..<20).map { _ in otherLabel.next() } != expected)
        #expect((0..<20).map { _ in otherSeed.next() } != expected)
        #expect(quiet.fork(label: "network").seed == fromQuiet.seed)
    }

    @Test func integersStayInTheirRangeAndCoverIt() {
        let random = SimRandom(seed: 3)
        var seen = Set<Int>()
        for _ in 0..<3_000 {
            let value = random.integer(in: -2...3)
            #expect((-2...3).contains(value))
            seen.insert(value)
        }
        #expect(seen == Set(-2...3))
        #expect(random.integer(in: 17...17) == 17)
        let extremes = (0..<100).map { _ in random.integer(in: Int.min...Int.max) }
        #expect(extremes.contains { $0 < 0 } && extremes.contains { $0 > 0 })
        for _ in 0..<100 {
            #expect((Int.max - 1...Int.max).contains(random.integer(in: Int.max - 1...Int.max)))
            #expect((Int.min...Int.min + 2).contains(random.integer(in: Int.min...Int.min + 2)))
        }
    }

    @Test func bytesHaveTheAskedLength() {
        let random = SimRandom(seed: 11)
        #expect(random.bytes(0).isEmpty)
        for count in [1, 7, 8, 9, 33] {
            #expect(random.bytes(count).count == count)
        }
    }

    @Test func chanceZeroNeverAndOneAlways() {
        let random = SimRandom(seed: 12)
        #expect((0..<1_000).allSatisfy { _ in !random.chance(0) && random.chance(1) })
        let hits = (0..<10_000).count { _ in random.chance(0.25) }
        #expect((2_000...3_000).contains(hits))
    }
}
