import DequeModule
import ParleyLocks
import ParleySettlement

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks that ``SimScheduler`` really makes runs replayable on this toolchain: a workload
/// using every concurrency feature the node uses — actors, task groups (with completion
/// order and cancellation), `AsyncStream`, checked continuations, unstructured and detached
/// tasks of mixed priority, ``VirtualClock`` sleeps (zero, cancelled, killed by incarnation,
/// cancelled at the very instant they fire) and a linked chain clock — records a trace of
/// who did what when; the same seed must give the same trace, run after run.
///
/// It installs the process-wide scheduler, so it runs in a process of its own (`parley sim
/// --self-test`), from synchronous code, never beside other concurrent work.
public enum SimSelfTest {
    /// One run of the workload under a fresh scheduler; the trace, one event a line, ends
    /// with the run summaries.
    public static func run(seed: UInt64) throws(SimSchedulerError) -> String {
        let scheduler = try SimScheduler.install()
        defer { scheduler.uninstall() }
        let chain = LocalChain()
        let clock = VirtualClock(chain: chain)
        let trace = SelfTestTrace(clock: clock, chain: chain)
        let workload = SelfTestWorkload(random: SimRandom(seed: seed), clock: clock, trace: trace)
        Task { await workload.run() }

        let first = scheduler.run(until: { clock.now >= SelfTestWorkload.killTime }, clock: clock)
        trace.line("driver: \(first)")
        trace.line("driver: killed incarnation 2, \(clock.kill(incarnation: 2)) sleepers woken")
        let second = scheduler.run(clock: clock, timeLimit: .seconds(3_600))
        trace.line("driver: \(second)")
        trace.line("driver: \(clock.pendingSleepers) sleepers, \(scheduler.pendingJobs) jobs left, \(scheduler.jobsRun) jobs run")
        if scheduler.determinismBroken {
            trace.line("driver: DETERMINISM BROKEN, \(scheduler.foreignEnqueues) foreign enqueues")
        }
        return trace.text
    }

    /// Runs the workload `runs` times with `seed` and compares the traces.
    public static func verify(seed: UInt64, runs: Int) throws(SimSchedulerError) -> SimSelfTestVerdict {
        precondition(runs >= 1, "runs must be at least 1")
        let reference = try run(seed: seed)
        var verdict = SimSelfTestVerdict(seed: seed, runs: runs, mismatchingRuns: 0, firstTrace: reference)
        for index in 1..<runs {
            let trace = try run(seed: seed)
            guard trace != reference else { continue }
            verdict.mismatchingRuns += 1
            if verdict.divergence == nil {
                verdict.divergence = SimSelfTestVerdict.firstDifference(reference, trace, run: index)
            }
        }
        return verdict
    }

    /// Checks that an escape from the simulation is noticed: a simulated task awaits one that
    /// calls `Task.yield()` and `Task.sleep` (both bypass the hook). Pumps the queue in real
    /// time until the escaped task is back (at most `realTimeLimit`) and returns
    /// ``SimScheduler/determinismBroken`` — true on a runtime where those calls escape.
    public static func escapeIsDetected(realTimeLimit: Duration = .seconds(10)) throws(SimSchedulerError) -> Bool {
        let scheduler = try SimScheduler.install()
        defer { scheduler.uninstall() }
        let done = Locked(false)
        Task {
            let escapee = Task {
                await Task.yield()
                try? await Task.sleep(for: .milliseconds(1))
            }
            await escapee.value
            done.withLock { $0 = true }
        }
        let start = ContinuousClock.now
        while !done.withLock({ $0 }), ContinuousClock.now - start < realTimeLimit {
            scheduler.runUntilIdle()
            usleep(1_000)
        }
        scheduler.runUntilIdle()
        return scheduler.determinismBroken
    }
}

/// What ``SimSelfTest/verify(seed:runs:)`` found.
public struct SimSelfTestVerdict: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var runs: Int
    /// Runs whose trace differs from the first.
    public var mismatchingRuns: Int
    public var firstTrace: String
    /// The first differing line of the first mismatching run, against the first trace.
    public var divergence: String?

    /// Every trace identical, and no run saw an escape.
    public var passed: Bool {
        mismatchingRuns == 0 && !firstTrace.contains("DETERMINISM BROKEN")
    }

    public var description: String {
        let lines = firstTrace.split(separator: "\n").count
        if passed { return "seed \(seed): \(runs) runs, identical traces of \(lines) lines" }
        return "seed \(seed): \(mismatchingRuns) of \(runs) runs differ" + (divergence.map { "; \($0)" } ?? "")
            + (firstTrace.contains("DETERMINISM BROKEN") ? "; determinism broken (foreign enqueues)" : "")
    }

    static func firstDifference(_ reference: String, _ other: String, run: Int) -> String {
        let left = reference.split(separator: "\n", omittingEmptySubsequences: false)
        let right = other.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? String(left[index]) : "<end>"
            let b = index < right.count ? String(right[index]) : "<end>"
            if a != b { return "run \(run), line \(index + 1): expected \"\(a)\", got \"\(b)\"" }
        }
        return "run \(run): traces differ"
    }
}

/// The self-test's event log, each line stamped with virtual and chain time.
private final class SelfTestTrace: Sendable {
    private let lines = Locked<[String]>([])
    private let clock: VirtualClock
    private let chain: LocalChain

    init(clock: VirtualClock, chain: LocalChain) {
        self.clock = clock
        self.chain = chain
    }

    func line(_ event: String) {
        let (seconds, attoseconds) = clock.now.components
        let millis = attoseconds / 1_000_000_000_000_000
        let stamped = "t=\(seconds).\(String(millis + 1_000).dropFirst()) chain=\(chain.now.seconds) \(event)"
        lines.withLock { $0.append(stamped) }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// Shared money moved by every part of the workload: actor reentrancy shows in the trace.
private actor SelfTestLedger {
    private var balances: [Int: Int] = [:]

    func deposit(_ amount: Int, to account: Int) -> Int {
        balances[account, default: 0] += amount
        return balances[account, default: 0]
    }

    var total: Int { balances.values.reduce(0, +) }
}

/// A one-slot mailbox bridged with a checked continuation: one receiver waits, senders queue.
private actor SelfTestMailbox {
    private var queued = Deque<String>()
    private var waiter: CheckedContinuation<String?, Never>?
    private var closed = false

    func send(_ message: String) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: message)
        } else {
            queued.append(message)
        }
    }

    /// The next message; nil once closed and drained.
    func receive() async -> String? {
        if let message = queued.popFirst() { return message }
        if closed { return nil }
        return await withCheckedContinuation { waiter = $0 }
    }

    func close() {
        closed = true
        waiter?.resume(returning: nil)
        waiter = nil
    }
}

private struct SelfTestWorkload: Sendable {
    /// When the driver kills incarnation 2.
    static let killTime: Duration = .seconds(15)

    let random: SimRandom
    let clock: VirtualClock
    let trace: SelfTestTrace
    let ledger = SelfTestLedger()
    let mailbox = SelfTestMailbox()

    func run() async {
        trace.line("workload starts")
        let (stream, feed) = AsyncStream.makeStream(of: String.self)
        let consumer = Task { await consume(stream) }
        let receiver = Task { await receive() }
        raceCancellationWithFiring()
        cancelALongSleep()
        detachedByPriority()
        await pingPong()
        await groupCompletionOrder()
        await failingGroupCancelsSiblings()
        await withTaskGroup(of: Void.self) { group in
            for node in 1...3 {
                group.addTask { await heartbeat(node: node, feed: feed) }
            }
        }
        feed.finish()
        await consumer.value
        await mailbox.close()
        await receiver.value
        trace.line("workload ends, ledger total \(await ledger.total)")
    }

    /// A "node" life: beats at random intervals (some zero) until done or killed.
    func heartbeat(node: Int, feed: AsyncStream<String>.Continuation) async {
        let clock = clock.view(incarnation: node)
        let random = random.fork(label: "node-\(node)")
        for beat in 1...20 {
            let pause: Duration = random.chance(0.2) ? .zero : .milliseconds(random.integer(in: 1...3_000))
            do {
                try await clock.sleep(for: pause)
            } catch {
                trace.line("node \(node) unwinds at beat \(beat): \(error)")
                return
            }
            let balance = await ledger.deposit(random.integer(in: 1...100), to: node)
            trace.line("node \(node) beat \(beat) balance \(balance)")
            feed.yield("n\(node).\(beat)")
        }
        trace.line("node \(node) done")
    }

    func consume(_ stream: AsyncStream<String>) async {
        var count = 0
        for await item in stream {
            count += 1
            trace.line("consumed \(item)")
            if count % 4 == 0 { await mailbox.send(item) }
        }
        trace.line("stream ended after \(count)")
    }

    func receive() async {
        while let message = await mailbox.receive() {
            trace.line("mailbox got \(message)")
        }
        trace.line("mailbox closed")
    }

    /// The canceller's timer and the target's share a deadline; the canceller's was set first,
    /// so it runs first and cancels a sleep that has already fired: the target wakes normally
    /// (once), with its task marked cancelled.
    func raceCancellationWithFiring() {
        let target = Locked<Task<Void, Never>?>(nil)
        let trace = trace
        let clock = clock
        Task {
            try? await clock.sleep(for: .seconds(10))
            target.withLock { $0?.cancel() }
            trace.line("race: cancelled the target at its own deadline")
        }
        let task = Task {
            do {
                try await clock.sleep(for: .seconds(10))
                trace.line("race: target woke, cancelled flag \(Task.isCancelled)")
            } catch {
                trace.line("race: target threw \(error)")
            }
        }
        target.withLock { $0 = task }
    }

    func cancelALongSleep() {
        let clock = clock
        let trace = trace
        let delay = Duration.milliseconds(random.fork(label: "long-sleep").integer(in: 1...20_000))
        let sleeper = Task {
            do {
                try await clock.sleep(for: .seconds(1_000))
                trace.line("long sleep woke (wrong)")
            } catch {
                trace.line("long sleep cancelled: \(error)")
            }
        }
        Task {
            try? await clock.sleep(for: delay)
            sleeper.cancel()
        }
    }

    /// Priorities do not reorder: the scheduler is FIFO.
    func detachedByPriority() {
        let trace = trace
        for (index, priority) in [TaskPriority.background, .high, .utility, .userInitiated].enumerated() {
            Task.detached(priority: priority) { trace.line("detached \(index) ran") }
        }
    }

    /// Zero sleeps are the deterministic yield: two tasks alternate.
    func pingPong() async {
        let clock = clock
        let trace = trace
        await withTaskGroup(of: Void.self) { group in
            for side in ["ping", "pong"] {
                group.addTask {
                    for round in 1...3 {
                        trace.line("\(side) \(round)")
                        try? await clock.sleep(for: .zero)
                    }
                }
            }
        }
    }

    /// Children finish in an order set by their (random) sleeps and the scheduler.
    func groupCompletionOrder() async {
        let random = random.fork(label: "group")
        let pauses = (0..<6).map { _ in Duration.milliseconds(500 * random.integer(in: 0...2)) }
        let order = await withTaskGroup(of: Int.self) { group in
            for (child, pause) in pauses.enumerated() {
                group.addTask {
                    try? await clock.sleep(for: pause)
                    _ = await ledger.deposit(child, to: 100)
                    return child
                }
            }
            var order: [Int] = []
            for await child in group { order.append(child) }
            return order
        }
        trace.line("group completion order \(order)")
    }

    /// A throwing child cancels its group; the sibling's virtual sleep ends with CancellationError.
    func failingGroupCancelsSiblings() async {
        struct ChildFailed: Error {}
        let clock = clock
        let trace = trace
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await clock.sleep(for: .seconds(2))
                    throw ChildFailed()
                }
                group.addTask {
                    do {
                        try await clock.sleep(for: .seconds(100))
                        trace.line("sibling slept through (wrong)")
                    } catch {
                        trace.line("sibling cancelled: \(error)")
                        throw error
                    }
                }
                // `next()` rethrows the first failure; leaving the group with it cancels the rest.
                while try await group.next() != nil {}
            }
        } catch {
            trace.line("group failed: \(error)")
        }
    }
}
