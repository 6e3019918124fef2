import DequeModule
import ParleyLocks

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs every Swift-concurrency job of the process on one thread, one at a time, in the
/// order they were enqueued: the deterministic executor under the whole-node simulator.
///
/// How: the concurrency runtime calls `swift_task_enqueueGlobal_hook`, when set, for every
/// job headed for the global concurrent executor — a task starting, a continuation resumed,
/// a default actor with work to do. The scheduler sets that hook to a function that only
/// appends the job to a FIFO run queue, and ``runUntilIdle()`` (or ``run(until:clock:timeLimit:maxSteps:)``)
/// pops and runs the jobs on the thread that installed it. With no other thread running
/// Swift code, the order of jobs — so the interleaving of every task, actor, `AsyncStream`
/// and task group — follows from the program and its seed alone, and replays exactly.
///
/// What escapes it: `Task.sleep` and `Task.yield` do not pass through the hook (Swift 6.3;
/// ``SimSelfTest/escapeIsDetected(realTimeLimit:)`` re-checks on the running toolchain): the
/// runtime hands their jobs straight to the real executor, which resumes them later on a
/// pool thread, in real time. Code under simulation must therefore never call them: sleep on the
/// node's ``VirtualClock`` view instead (a zero-duration sleep there is the deterministic
/// yield). Nor may it run on a real thread of its own, or on the `MainActor` (main-executor
/// jobs bypass the hook too). The scheduler cannot stop such an escape, but it notices its
/// usual trace: a job enqueued from a thread other than the simulation thread. Every such
/// enqueue is counted (``foreignEnqueues``) and makes ``determinismBroken`` true; the job
/// still joins the run queue, so the run goes on and can be inspected, but it no longer
/// replays. (Detection is best effort: a task resumed on a pool thread that then finishes
/// without enqueueing anything leaves no trace.)
///
/// The hook is process-wide, and so is this scheduler: at most one is installed at a time,
/// and while it is, *every* task of the process runs only when the simulation thread drains
/// the queue. A simulation therefore runs in a process of its own (`parley sim`), never
/// inside a test process whose runner schedules other tests concurrently.
///
/// Use from synchronous code on one thread (the "simulation thread"): ``install()`` or
/// ``withInstalled(_:)``, spawn the workload with `Task {}`, drive it with
/// ``run(until:clock:timeLimit:maxSteps:)``, then ``uninstall()``. The instance is not
/// `Sendable`: it belongs to that thread. That synchronous code may itself have been called
/// from a task (a `parley` subcommand's `run()`): the simulated jobs then run nested on the
/// caller's thread, and the caller's task resumes its own work when the scheduler returns.
public final class SimScheduler {
    /// The thread that installed the scheduler; only it may drive the queue.
    private let thread: pthread_t
    private var uninstalled = false
    private var draining = false
    /// Jobs run through this scheduler since it was installed.
    public private(set) var jobsRun = 0

    private init(thread: pthread_t) {
        self.thread = thread
    }

    /// A scheduler dropped without ``uninstall()`` uninstalls itself: the hook lives exactly
    /// as long as the instance.
    deinit {
        if !uninstalled { EnqueueHook.uninstall() }
    }

    /// Installs the enqueue hook and makes the calling thread the simulation thread.
    ///
    /// Call before any task of the simulation exists, with no concurrency work in flight on
    /// other threads: jobs already handed to the real executor stay there. Keep the returned
    /// instance until the simulation ends; dropping it uninstalls.
    ///
    /// - Throws: ``SimSchedulerError/alreadyInstalled`` when a scheduler is installed,
    ///   ``SimSchedulerError/hookInUse`` when someone else set the runtime's hook, and
    ///   ``SimSchedulerError/hookUnavailable(_:)`` when this runtime has no such hook.
    public static func install() throws(SimSchedulerError) -> SimScheduler {
        let thread = pthread_self()
        try EnqueueHook.install(simulationThread: thread)
        return SimScheduler(thread: thread)
    }

    /// Installs a scheduler, runs `body` with it and uninstalls it, also when `body` throws.
    public static func withInstalled<Result>(_ body: (SimScheduler) throws -> Result) throws -> Result {
        let scheduler = try install()
        defer { scheduler.uninstall() }
        return try body(scheduler)
    }

    /// Whether a scheduler is installed in this process.
    public static var isInstalled: Bool { EnqueueHook.isInstalled }

    /// Removes the hook; jobs enqueued from now on go to the real executor again.
    ///
    /// Jobs still queued are handed to the real executor rather than dropped (a dropped job
    /// is a task that never resumes): they then run on pool threads, outside the simulation.
    /// Drive the simulation to quiescence first — after ``VirtualClock/cancelAll()`` if
    /// sleepers should unwind — when nothing may run afterwards. Calling it twice is harmless.
    ///
    /// - Returns: how many queued jobs were handed over.
    @discardableResult
    public func uninstall() -> Int {
        guard !uninstalled else { return 0 }
        precondition(!draining, "SimScheduler.uninstall() called from inside a simulated job")
        uninstalled = true
        return EnqueueHook.uninstall()
    }

    /// Enqueues seen from a thread other than the simulation thread since installation:
    /// each one is code under simulation that escaped to real time or a real thread.
    public var foreignEnqueues: Int { EnqueueHook.foreignEnqueues }

    /// True once any job was enqueued from another thread: from then on the run depends on
    /// real thread timing and a replay with the same seed may differ.
    public var determinismBroken: Bool { foreignEnqueues > 0 }

    /// Jobs waiting in the run queue.
    public var pendingJobs: Int { EnqueueHook.pendingJobs }

    /// Runs queued jobs, oldest first, until the queue is empty — including the jobs those
    /// jobs enqueue. Returns how many ran.
    ///
    /// Must be called on the simulation thread, outside any simulated job.
    @discardableResult
    public func runUntilIdle() -> Int {
        runJobs(limit: .max)
    }

    /// Runs at most `limit` jobs, oldest first; stops early when the queue is empty.
    func runJobs(limit: Int) -> Int {
        precondition(!uninstalled, "SimScheduler used after uninstall()")
        precondition(
            pthread_equal(pthread_self(), thread) != 0, "SimScheduler driven from a thread other than the one that installed it"
        )
        precondition(!draining, "SimScheduler.runUntilIdle() called from inside a simulated job")
        draining = true
        defer { draining = false }
        var ran = 0
        while ran < limit, let job = EnqueueHook.dequeue() {
            job.runSynchronously(on: EnqueueHook.genericExecutor)
            ran += 1
        }
        jobsRun += ran
        return ran
    }

    /// Drives the simulation: runs jobs until the queue is empty; then, unless `condition`
    /// holds, moves `clock` to its next timer deadline, fires the timers due there and runs
    /// again. Timers therefore fire one deadline at a time, each sleeper waking with `now`
    /// equal to its own deadline.
    ///
    /// Stops when `condition` holds (checked before each round, when every job runnable at
    /// the current instant has run), when nothing is runnable and no timer is set
    /// (quiescent: every remaining task waits on something no one will do), when the next
    /// deadline lies beyond `timeLimit` (the clock is then moved to `timeLimit`), or after
    /// `maxSteps` jobs (a livelock guard: work that keeps re-enqueueing at one instant).
    ///
    /// - Parameters:
    ///   - condition: evaluated on the simulation thread between rounds; must not await.
    ///   - timeLimit: a virtual time (on `clock`) the run does not go past; nil: no limit.
    public func run(
        until condition: () -> Bool = { false },
        clock: VirtualClock,
        timeLimit: Duration? = nil,
        maxSteps: Int = 10_000_000
    ) -> SimRunSummary {
        let start = clock.now
        var jobs = 0
        var fired = 0
        func summary(_ outcome: SimRunOutcome) -> SimRunSummary {
            SimRunSummary(
                outcome: outcome, jobsRun: jobs, timersFired: fired, timeAdvanced: clock.now - start,
                determinismBroken: determinismBroken
            )
        }
        while true {
            if condition() { return summary(.conditionMet) }
            if pendingJobs > 0 {
                guard jobs < maxSteps else { return summary(.stepLimit) }
                jobs += runJobs(limit: maxSteps - jobs)
                continue
            }
            guard let next = clock.nextDeadline else { return summary(.quiescent) }
            if let timeLimit, next > timeLimit {
                clock.advance(to: timeLimit)
                return summary(.timeLimit)
            }
            clock.advance(to: next)
            fired += clock.fireDue()
        }
    }
}

/// Why ``SimScheduler/run(until:clock:timeLimit:maxSteps:)`` returned.
public enum SimRunOutcome: String, Sendable, Hashable {
    /// The caller's condition held.
    case conditionMet
    /// No job runnable and no timer set: nothing will ever happen again.
    case quiescent
    /// The next timer lies beyond the time limit.
    case timeLimit
    /// `maxSteps` jobs ran and more were queued.
    case stepLimit
}

/// What one ``SimScheduler/run(until:clock:timeLimit:maxSteps:)`` did.
public struct SimRunSummary: Sendable, Hashable, CustomStringConvertible {
    public var outcome: SimRunOutcome
    public var jobsRun: Int
    /// Sleepers resumed by their deadline (not those cancelled or killed).
    public var timersFired: Int
    /// Virtual time that passed during the run.
    public var timeAdvanced: Duration
    /// ``SimScheduler/determinismBroken`` at the end of the run.
    public var determinismBroken: Bool

    public var quiescent: Bool { outcome == .quiescent }

    public var description: String {
        "\(outcome.rawValue): \(jobsRun) jobs, \(timersFired) timers, \(timeAdvanced) advanced"
            + (determinismBroken ? ", DETERMINISM BROKEN" : "")
    }
}

/// Why a ``SimScheduler`` could not be installed.
public enum SimSchedulerError: Error, Equatable, CustomStringConvertible {
    /// Another scheduler is installed in this process; the hook is process-wide.
    case alreadyInstalled
    /// The runtime's enqueue hook is already set by someone else.
    case hookInUse
    /// The concurrency runtime does not export the hook, or its ABI differs.
    case hookUnavailable(String)

    public var description: String {
        switch self {
        case .alreadyInstalled:
            "a SimScheduler is already installed in this process (one simulation per process)"
        case .hookInUse:
            "swift_task_enqueueGlobal_hook is already set by other code in this process"
        case .hookUnavailable(let reason):
            "the Swift concurrency runtime's enqueue hook is unavailable: \(reason)"
        }
    }
}

/// The process-wide side of ``SimScheduler``: the runtime hook and the run queue it feeds.
///
/// The hook must be a thin function (no context), since the runtime calls it through a bare
/// function pointer; so everything it touches is this global state.
private enum EnqueueHook {
    /// The runtime's `swift_task_enqueueGlobal_original`: `SWIFT_CC(swift) void (*)(Job *)`.
    typealias Original = @convention(thin) (UnownedJob) -> Void
    /// The hook's type: `SWIFT_CC(swift) void (*)(Job *, swift_task_enqueueGlobal_original)`.
    typealias Hook = @convention(thin) (UnownedJob, Original) -> Void

    static let symbolName = "swift_task_enqueueGlobal_hook"

    struct State {
        var installed = false
        /// The address of the runtime's hook variable, found at install.
        var slot: UInt?
        var simulationThread: pthread_t?
        var queue = Deque<UnownedJob>()
        var foreignEnqueues = 0
        /// The runtime's own enqueue, as handed to the hook; where leftovers go at uninstall.
        var original: UInt?
    }

    static let state = Locked(State())

    /// The generic executor (`SerialExecutorRef::generic()`, both words zero): what a job of
    /// a non-isolated task runs on. Default actors' jobs take their actor themselves.
    static let genericExecutor = unsafeBitCast((UInt(0), UInt(0)), to: UnownedSerialExecutor.self)

    static let hook: Hook = { job, original in
        EnqueueHook.enqueue(job, original: unsafeBitCast(original, to: UInt.self))
    }

    static func enqueue(_ job: UnownedJob, original: UInt) {
        let current = pthread_self()
        let queued = state.withLock { state in
            // A thread that read the hook just before `uninstall` cleared it lands here late.
            guard state.installed else { return false }
            state.original = original
            if let thread = state.simulationThread, pthread_equal(current, thread) == 0 {
                state.foreignEnqueues += 1
            }
            state.queue.append(job)
            return true
        }
        if !queued { unsafeBitCast(original, to: Original.self)(job) }
    }

    static func dequeue() -> UnownedJob? {
        state.withLock { $0.queue.popFirst() }
    }

    static var isInstalled: Bool { state.withLock { $0.installed } }
    static var foreignEnqueues: Int { state.withLock { $0.foreignEnqueues } }
    static var pendingJobs: Int { state.withLock { $0.queue.count } }

    /// The hook variable in the concurrency runtime, looked up by name.
    static func slot() throws(SimSchedulerError) -> UnsafeMutableRawPointer {
        guard MemoryLayout<UnownedSerialExecutor>.size == 2 * MemoryLayout<UInt>.size,
            MemoryLayout<Hook>.size == MemoryLayout<UnsafeRawPointer>.size
        else { throw .hookUnavailable("unexpected executor or function-pointer layout") }
        guard let process = dlopen(nil, RTLD_NOW) else {
            throw .hookUnavailable("dlopen(nil) failed")
        }
        guard let slot = dlsym(process, symbolName) else {
            throw .hookUnavailable("\(symbolName) not found (is libswift_Concurrency loaded?)")
        }
        return slot
    }

    static func install(simulationThread: pthread_t) throws(SimSchedulerError) {
        let slot = try slot()
        try state.withLock { (state: inout State) throws(SimSchedulerError) in
            guard !state.installed else { throw .alreadyInstalled }
            guard slot.load(as: UnsafeRawPointer?.self) == nil else { throw .hookInUse }
            state = State(installed: true, slot: UInt(bitPattern: slot), simulationThread: simulationThread)
            slot.storeBytes(of: unsafeBitCast(hook, to: UnsafeRawPointer.self), as: UnsafeRawPointer.self)
        }
    }

    @discardableResult
    static func uninstall() -> Int {
        let (leftovers, original) = state.withLock { state in
            if let slot = state.slot.flatMap(UnsafeMutableRawPointer.init(bitPattern:)) {
                slot.storeBytes(of: nil, as: UnsafeRawPointer?.self)
            }
            let leftovers = Array(state.queue)
            let original = state.original
            state = State()
            return (leftovers, original)
        }
        guard let original else { return leftovers.count }
        let enqueue = unsafeBitCast(original, to: Original.self)
        for job in leftovers { enqueue(job) }
        return leftovers.count
    }
}
