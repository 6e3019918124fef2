import Glibc
import ParleyCrypto
import Testing

@testable import ParleyTransport

/// A counter only the loop thread touches; the test reads it through `submit`.
private final class LoopConfinedCounter: @unchecked Sendable {
    var value = 0
    var order: [Int] = []
}

@Suite struct EventLoopTests {
    @Test func submitFromManyTasksRunsOnTheLoopThreadAndReturnsResults() async throws {
        try await withEventLoop { loop in
            #expect(!loop.isOnLoopThread)
            let results = try await withThrowingTaskGroup(of: (Int, Bool, Int).self) { group in
                for index in 0..<200 {
                    group.addTask { try await loop.submit { (index, loop.isOnLoopThread, index * 3) } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 200)
            #expect(results.allSatisfy { $0.1 && $0.2 == $0.0 * 3 })
        }
    }

    @Test func executeFromManyTasksRunsEveryItemOnTheLoopInEachSendersOrder() async throws {
        try await withEventLoop { loop in
            let counter = LoopConfinedCounter()
            await withTaskGroup(of: Void.self) { group in
                for sender in 0..<8 {
                    group.addTask {
                        for step in 0..<500 {
                            loop.execute {
                                precondition(loop.isOnLoopThread)
                                counter.value += 1
                                counter.order.append(sender * 1_000 + step)
                            }
                        }
                    }
                }
            }
            let (total, order) = try await loop.submit { (counter.value, counter.order) }
            #expect(total == 4_000)
            for sender in 0..<8 {
                let steps = order.filter { $0 / 1_000 == sender }.map { $0 % 1_000 }
                #expect(steps == Array(0..<500), "sender \(sender)'s work ran out of order")
            }
        }
    }

    /// A peer that hangs up while we write must not kill the process with SIGPIPE.
    @Test func aLoopIgnoresBrokenPipes() throws {
        let loop = try EventLoop(name: "sigpipe")
        defer { loop.shutdown() }
        var current = sigaction()
        #expect(sigaction(SIGPIPE, nil, &current) == 0)
        #expect(unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self))
    }

    @Test func submitRethrowsTheWorksError() async throws {
        struct Refused: Error, Equatable {}
        try await withEventLoop { loop in
            await #expect(throws: Refused()) {
                try await loop.submit { () throws -> Int in throw Refused() }
            }
        }
    }

    @Test func timersFireInDeadlineOrderAndEqualDeadlinesInScheduleOrder() async throws {
        try await withEventLoop { loop in
            let fired = Recorder<String>()
            for (label, milliseconds) in [("30ms", 30), ("10ms", 10), ("20ms-a", 20), ("20ms-b", 20)] {
                loop.schedule(after: .milliseconds(milliseconds)) { fired.record(label) }
            }
            #expect(await eventually { fired.all.count == 4 })
            #expect(fired.all == ["10ms", "20ms-a", "20ms-b", "30ms"])
        }
    }

    @Test func timersNeverFireEarly() async throws {
        try await withEventLoop { loop in
            let clock = ContinuousClock()
            let start = clock.now
            let elapsed = Locked<Duration?>(nil)
            loop.schedule(after: .milliseconds(25)) { elapsed.withLock { $0 = clock.now - start } }
            #expect(await eventually { elapsed.withLock { $0 } != nil })
            let measured = try #require(elapsed.withLock { $0 })
            #expect(measured >= .milliseconds(25))
        }
    }

    @Test func cancelledTimerNeverFires() async throws {
        try await withEventLoop { loop in
            let fired = Recorder<String>()
            let cancelled = loop.schedule(after: .milliseconds(20)) { fired.record("cancelled") }
            cancelled.cancel()
            cancelled.cancel()  // idempotent
            let later = loop.schedule(after: .milliseconds(60)) { fired.record("sentinel") }
            #expect(await eventually { fired.all.contains("sentinel") })
            later.cancel()  // after firing: harmless
            #expect(fired.all == ["sentinel"])
        }
    }

    @Test func timerCancelledOnTheLoopThreadBeforeItsTurnNeverFires() async throws {
        try await withEventLoop { loop in
            let fired = Recorder<String>()
            try await loop.submit {
                let handle = loop.schedule(after: .zero) { fired.record("cancelled") }
                handle.cancel()
            }
            loop.schedule(after: .milliseconds(10)) { fired.record("sentinel") }
            #expect(await eventually { !fired.all.isEmpty })
            #expect(fired.all == ["sentinel"])
        }
    }

    @Test func sleepWaitsAndIsCancellable() async throws {
        try await withEventLoop { loop in
            let clock = ContinuousClock()
            let start = clock.now
            try await loop.sleep(for: .milliseconds(15))
            #expect(clock.now - start >= .milliseconds(15))

            let sleeper = Task { try await loop.sleep(for: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(5))
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
        }
    }

    @Test func shutdownJoinsTheThreadAndASecondShutdownIsANoOp() async throws {
        let loop = try EventLoop(name: "uv-join")
        #expect(try await loop.submit { loop.isOnLoopThread })
        #expect(Loopback.hasThread(named: loop.name))
        loop.shutdown()
        #expect(await Loopback.threadEnds(named: loop.name), "loop thread still alive after shutdown")
        #expect(loop.closeStatus == 0)
        loop.shutdown()
        #expect(loop.closeStatus == 0)
        await #expect(throws: EventLoopError.shutDown) { try await loop.submit { 1 } }
        loop.execute { Issue.record("work ran after shutdown") }
        loop.schedule(after: .zero) { Issue.record("timer fired after shutdown") }.cancel()
    }

    @Test func concurrentShutdownsAllReturnAfterTheJoin() async throws {
        let loop = try EventLoop(name: "uv-concur")
        let ran = Locked(0)
        for _ in 0..<100 { loop.execute { ran.withLock { $0 += 1 } } }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { loop.shutdown() } }
        }
        #expect(ran.withLock { $0 } == 100, "work enqueued before shutdown must run")
        #expect(loop.closeStatus == 0)
        #expect(await Loopback.threadEnds(named: loop.name))
    }

    @Test func shutdownFailsSleepersAndDropsPendingTimers() async throws {
        let loop = try EventLoop(name: "uv-sleepers")
        let fired = Recorder<String>()
        loop.schedule(after: .seconds(30)) { fired.record("timer") }
        let sleeper = Task { try await loop.sleep(for: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(20))
        loop.shutdown()
        await #expect(throws: TCPError.loopShutDown) { try await sleeper.value }
        #expect(fired.all.isEmpty)
        #expect(loop.closeStatus == 0)
    }

    @Test func durationsRoundUpToWholeMilliseconds() {
        #expect(Duration.zero.uvMilliseconds == 0)
        #expect(Duration.nanoseconds(-5).uvMilliseconds == 0)
        #expect(Duration.nanoseconds(1).uvMilliseconds == 1)
        #expect(Duration.milliseconds(10).uvMilliseconds == 10)
        #expect(Duration.microseconds(10_001).uvMilliseconds == 11)
        #expect(Duration.seconds(3).uvMilliseconds == 3_000)
        #expect(Duration.seconds(Int64.max).uvMilliseconds > 0)
    }
}

/// Dial backoff, nested under `TCPTests` so `--filter TCPTests` runs it.
extension TCPTests {
    @Suite struct RetryPolicyTests {
        @Test func ceilingsGrowExponentiallyUpToTheCap() {
            let policy = RetryPolicy(
                initialDelay: .milliseconds(100), multiplier: 2, maxDelay: .seconds(1), maxAttempts: 10, jitter: .none)
            let ceilings = (1...6).map { policy.backoffCeiling(afterAttempt: $0) }
            #expect(ceilings == [.milliseconds(100), .milliseconds(200), .milliseconds(400),
                                 .milliseconds(800), .seconds(1), .seconds(1)])
            #expect((1...6).map { policy.delay(afterAttempt: $0) } == ceilings)
        }

        @Test func seededFullJitterIsDeterministicAndWithinTheCeiling() {
            let seed: UInt64 = 0x5EED
            let first = RetryPolicy(jitter: .seeded(seed))
            let second = RetryPolicy(jitter: .seeded(seed))
            let delays = (1...8).map { first.delay(afterAttempt: $0) }
            #expect(delays == (1...8).map { second.delay(afterAttempt: $0) }, "seed \(seed) must replay")
            for (index, delay) in delays.enumerated() {
                #expect(delay >= .zero && delay <= first.backoffCeiling(afterAttempt: index + 1))
            }
            #expect(Set(delays).count > 1, "full jitter should vary")
        }

        @Test func extremeSettingsNeitherTrapNorExceedTheCap() {
            let policy = RetryPolicy(
                initialDelay: .seconds(1), multiplier: 1e300, maxDelay: .seconds(Int64.max / 2), maxAttempts: 100,
                jitter: .seeded(7))
            #expect(policy.backoffCeiling(afterAttempt: 100) == .seconds(Int64.max / 2))
            #expect(policy.delay(afterAttempt: 100) <= .seconds(Int64.max / 2))
            let odd = RetryPolicy(initialDelay: .seconds(-3), multiplier: .nan, maxDelay: .seconds(-1), jitter: .full)
            #expect(odd.delay(afterAttempt: 5) == .zero)
        }

        @Test func fullJitterDrawsFromTheCallersGenerator() {
            let first = RetryPolicy(jitter: .full(using: SeededRandom(seed: 42)))
            let second = RetryPolicy(jitter: .full(using: SeededRandom(seed: 42)))
            #expect((1...5).map { first.delay(afterAttempt: $0) } == (1...5).map { second.delay(afterAttempt: $0) })
        }

        @Test func jitterClosureIsClampedToTheCeiling() {
            let half = RetryPolicy(initialDelay: .milliseconds(100), jitter: .init { $0 / 2 })
            #expect(half.delay(afterAttempt: 1) == .milliseconds(50))
            let wild = RetryPolicy(initialDelay: .milliseconds(100), jitter: .init { $0 * 10 })
            #expect(wild.delay(afterAttempt: 1) == .milliseconds(100))
            let negative = RetryPolicy(initialDelay: .milliseconds(100), jitter: .init { _ in .seconds(-1) })
            #expect(negative.delay(afterAttempt: 1) == .zero)
        }
    }
}
