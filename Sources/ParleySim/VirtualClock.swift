import HeapModule
import ParleyLocks
import ParleyNode
import ParleySettlement

/// Simulated time: a ``NodeClock`` whose `now` moves only when the simulation says so.
///
/// `sleep(for:)` sets a timer at `now + duration` and suspends; nothing wakes it but
/// ``fireDue()`` once ``advance(to:)`` has moved `now` to or past the deadline. Timers fire in
/// deadline order, and timers with equal deadlines in the order their sleeps began, so with
/// ``SimScheduler`` the whole timeline replays from the seed. ``SimScheduler/run(until:clock:timeLimit:maxSteps:)``
/// does the advancing: when no job is runnable it jumps to the next deadline.
///
/// A sleep of zero or negative duration still suspends: it sets a timer due *now*, resumed by
/// the next `fireDue()` — under the scheduler, once every job runnable at this instant has
/// run. It never resumes inline, so it is the deterministic stand-in for `Task.yield()`,
/// which must not be used under simulation (see ``SimScheduler``).
///
/// Crashes: each node sleeps through a ``View`` tagged with the *incarnation* — one life of
/// that node, a number never reused within a simulation. ``kill(incarnation:)`` resumes every
/// sleeper of that life with `CancellationError` and makes its later sleeps throw at once,
/// so the dead node's tasks unwind instead of waking up in its next life.
///
/// Chain time: given a `LocalChain`, the clock keeps chain time at its value when linked plus
/// the whole seconds of virtual time elapsed, advancing the chain whenever that floor moves.
///
/// Safe to use from any thread (state behind a lock), so it also works under the ordinary
/// executor, e.g. in tests.
public final class VirtualClock: NodeClock {
    /// A timer in the heap: earliest deadline first, then the earliest sleep.
    private struct Timer: Comparable {
        let deadline: Duration
        let sequence: UInt64

        static func < (lhs: Timer, rhs: Timer) -> Bool {
            (lhs.deadline, lhs.sequence) < (rhs.deadline, rhs.sequence)
        }
    }

    /// One sleep, from its call to its resumption.
    private enum Sleeper {
        /// Between the call and the continuation being stored (cancellation may land here).
        case registering(deadline: Duration, incarnation: Int?)
        case waiting(CheckedContinuation<Void, any Error>, deadline: Duration, incarnation: Int?)
        /// Cancelled or killed while registering: the registration throws instead of waiting.
        case cancelled

        var incarnation: Int? {
            switch self {
            case .registering(_, let incarnation), .waiting(_, _, let incarnation): incarnation
            case .cancelled: nil
            }
        }
    }

    private struct State {
        var now: Duration = .zero
        /// May hold timers whose sleeper is gone (cancelled, killed); skipped when popped.
        var timers = Heap<Timer>()
        var sleepers: [UInt64: Sleeper] = [:]
        var nextSequence: UInt64 = 0
        var killed: Set<Int> = []
        /// Whole virtual seconds already applied to the linked chain.
        var chainSeconds: Int64 = 0

        /// Drops timers at the top of the heap whose sleeper no longer waits.
        mutating func pruneStaleTimers() {
            while let top = timers.min {
                if case .waiting = sleepers[top.sequence] { return }
                timers.removeMin()
            }
        }

        /// Ends every sleep `matching` selects: waiting ones are returned, in deadline order, for
        /// the caller to resume; registering ones are marked so their registration throws.
        mutating func cancelSleepers(where matching: (Int?) -> Bool) -> [CheckedContinuation<Void, any Error>] {
            var victims: [(Timer, CheckedContinuation<Void, any Error>)] = []
            for (sequence, sleeper) in sleepers where matching(sleeper.incarnation) {
                switch sleeper {
                case .registering: sleepers[sequence] = .cancelled
                case .waiting(let continuation, let deadline, _):
                    sleepers[sequence] = nil
                    victims.append((Timer(deadline: deadline, sequence: sequence), continuation))
                case .cancelled: break
                }
            }
            // Dictionary order differs between processes; resumption order must not.
            return victims.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    private let state = Locked(State())
    private let chain: LocalChain?
    private let chainOrigin: ChainTime

    /// A clock at virtual time zero. With `chain`, chain time is kept at `chain.now` (as of
    /// now) plus the whole virtual seconds elapsed.
    public init(chain: LocalChain? = nil) {
        self.chain = chain
        chainOrigin = chain?.now ?? .zero
    }

    /// Virtual time since the clock was made.
    public var now: Duration { state.withLock { $0.now } }

    /// Sleeps outside any incarnation: only cancellation or ``cancelAll()`` ends it early.
    public func sleep(for duration: Duration) async throws {
        try await sleep(for: duration, incarnation: nil)
    }

    /// The clock as one node life sees it: same time, sleeps tagged with `incarnation`.
    public func view(incarnation: Int) -> View {
        View(clock: self, incarnation: incarnation)
    }

    /// The deadline of the earliest pending timer; nil when no one sleeps.
    public var nextDeadline: Duration? {
        state.withLock { state in
            state.pruneStaleTimers()
            return state.timers.min?.deadline
        }
    }

    /// Sleepers still waiting for their deadline.
    public var pendingSleepers: Int {
        state.withLock { state in
            state.sleepers.values.count { if case .waiting = $0 { true } else { false } }
        }
    }

    /// Moves `now` to `time` (never backwards: an earlier `time` changes nothing) and the
    /// linked chain with it. Wakes no one: call ``fireDue()`` for that.
    public func advance(to time: Duration) {
        let chainTarget: ChainTime? = state.withLock { state in
            guard time > state.now else { return nil }
            state.now = time
            let seconds = time.components.seconds
            guard chain != nil, seconds != state.chainSeconds else { return nil }
            state.chainSeconds = seconds
            return chainOrigin + UInt64(seconds)
        }
        if let chainTarget { chain?.advance(to: chainTarget) }
    }

    /// Moves `now` later by `duration` (see ``advance(to:)``).
    public func advance(by duration: Duration) {
        advance(to: now + duration)
    }

    /// Resumes every sleeper whose deadline is at or before `now`, in deadline order (equal
    /// deadlines: in the order the sleeps began). Under ``SimScheduler`` each resumption
    /// enqueues the sleeper's task, so they run in that order. Returns how many woke.
    @discardableResult
    public func fireDue() -> Int {
        let due = state.withLock { state in
            var due: [CheckedContinuation<Void, any Error>] = []
            while let top = state.timers.min, top.deadline <= state.now {
                state.timers.removeMin()
                if case .waiting(let continuation, _, _) = state.sleepers.removeValue(forKey: top.sequence) {
                    due.append(continuation)
                }
            }
            return due
        }
        for continuation in due { continuation.resume() }
        return due.count
    }

    /// Ends one node life: every sleeper of `incarnation` resumes throwing `CancellationError`
    /// (in deadline order) and every later sleep on it throws at once, so the dead life's
    /// tasks unwind and none of them lingers into the simulation's future. Incarnation
    /// numbers are never revived; a restarted node sleeps on a ``view(incarnation:)`` with a
    /// new one. Returns how many sleepers were woken.
    @discardableResult
    public func kill(incarnation: Int) -> Int {
        let victims = state.withLock { state in
            state.killed.insert(incarnation)
            return state.cancelSleepers { $0 == incarnation }
        }
        for continuation in victims { continuation.resume(throwing: CancellationError()) }
        return victims.count
    }

    /// Whether ``kill(incarnation:)`` was called for `incarnation`.
    public func isKilled(incarnation: Int) -> Bool {
        state.withLock { $0.killed.contains(incarnation) }
    }

    /// Resumes every sleeper, of every incarnation, with `CancellationError`: the teardown that
    /// lets all tasks unwind before the scheduler is uninstalled. Later sleeps work as usual.
    @discardableResult
    public func cancelAll() -> Int {
        let victims = state.withLock { state in state.cancelSleepers { _ in true } }
        for continuation in victims { continuation.resume(throwing: CancellationError()) }
        return victims.count
    }

    func sleep(for duration: Duration, incarnation: Int?) async throws {
        let sequence = try state.withLock { (state: inout State) throws(CancellationError) -> UInt64 in
            if let incarnation, state.killed.contains(incarnation) { throw CancellationError() }
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.sleepers[sequence] = .registering(deadline: state.now + max(duration, .zero), incarnation: incarnation)
            return sequence
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let registered = state.withLock { state in
                    guard case .registering(let deadline, let incarnation) = state.sleepers[sequence] else {
                        state.sleepers[sequence] = nil
                        return false
                    }
                    state.sleepers[sequence] = .waiting(continuation, deadline: deadline, incarnation: incarnation)
                    state.timers.insert(Timer(deadline: deadline, sequence: sequence))
                    return true
                }
                if !registered { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            cancel(sequence)
        }
    }

    /// Task cancellation of one sleep. Exactly one of this, ``fireDue()``, ``kill(incarnation:)``
    /// and ``cancelAll()`` takes a waiting sleeper out of the table, so it resumes once.
    private func cancel(_ sequence: UInt64) {
        let continuation: CheckedContinuation<Void, any Error>? = state.withLock { state in
            switch state.sleepers[sequence] {
            case .registering:
                state.sleepers[sequence] = .cancelled
                return nil
            case .waiting(let continuation, _, _):
                state.sleepers[sequence] = nil
                return continuation
            case .cancelled, nil:
                return nil
            }
        }
        continuation?.resume(throwing: CancellationError())
    }

    /// One node life's clock: ``VirtualClock``'s time, sleeps that ``VirtualClock/kill(incarnation:)``
    /// can end together. Pass it as the node's `NodeEnvironment.clock`.
    public struct View: NodeClock {
        public let clock: VirtualClock
        public let incarnation: Int

        public var now: Duration { clock.now }

        public func sleep(for duration: Duration) async throws {
            try await clock.sleep(for: duration, incarnation: incarnation)
        }
    }
}
