import ParleyChannel
import ParleyLocks

/// All of a node's channel timers — the proposal timeout and the turn timeout of every
/// channel — on one task, instead of a task per timer.
///
/// A timer per proposal used to be a `Task` sleeping for the timeout and cancelled when the
/// answer came: a task created, scheduled and torn down for every update on every channel.
/// Here arming and disarming are a dictionary write under a lock, and one sweeper task,
/// alive only while some timer is armed, wakes every `resolution` and fires what is due. A
/// timer fires at most `resolution` late. Timeouts are seconds (proposals) or hundreds of
/// milliseconds (turns in tests), so 10 ms is invisible.
final class Deadlines<Fire: Sendable>: Sendable {
    struct Key: Hashable, Sendable {
        let channel: ChannelID
        let kind: Kind
    }

    typealias Kind = DeadlineKind

    private struct Entry: Sendable {
        let bucket: Int64
        let fire: Fire
    }

    private struct State: Sendable {
        var entries: [Key: Entry] = [:]
        /// Keys by the resolution tick they fall due in. Disarmed or re-armed keys are left
        /// behind and skipped when their bucket comes up (the entry no longer names it).
        var buckets: [Int64: [Key]] = [:]
        var sweeping = false
        /// Buckets up to and including this one are swept. Set when a sweeper starts, one
        /// tick before the arming instant: every entry falls due at or after it.
        var cursor: Int64 = 0
        var stopped = false
    }

    let resolution: Duration
    private let clock: any NodeClock
    private let state = Locked(State())
    private let deliver: @Sendable (Fire) -> Void

    /// `deliver` gets each timer's `fire` value when it falls due on `clock`, on the sweeper task.
    init(
        clock: any NodeClock, resolution: Duration = .milliseconds(10), deliver: @escaping @Sendable (Fire) -> Void
    ) {
        self.clock = clock
        self.resolution = resolution
        self.deliver = deliver
    }

    /// Delivers `fire` once `delay` has passed (never earlier; at most `resolution` later),
    /// unless `key` is disarmed or armed again first.
    func arm(_ key: Key, after delay: Duration, fire: Fire) {
        let now = clock.now
        let due = now + delay
        let bucket = tick(of: due)
        let startSweeper = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.entries[key] = Entry(bucket: bucket, fire: fire)
            state.buckets[bucket, default: []].append(key)
            guard !state.sweeping else { return false }
            state.sweeping = true
            state.cursor = tick(of: now) - 1
            return true
        }
        if startSweeper { Task { await self.sweep() } }
    }

    func disarm(_ key: Key) {
        state.withLock { _ = $0.entries.removeValue(forKey: key) }
    }

    /// Fires nothing more; the sweeper ends at its next tick.
    func stop() {
        state.withLock {
            $0.stopped = true
            $0.entries = [:]
            $0.buckets = [:]
        }
    }

    /// Armed timers, for tests.
    var armedCount: Int { state.withLock { $0.entries.count } }

    private func tick(of instant: Duration) -> Int64 {
        let ticks = instant / resolution
        return Int64(ticks.rounded(.up))
    }

    private func sweep() async {
        while true {
            do { try await clock.sleep(for: resolution) } catch { break }
            let now = clock.now
            // A bucket is due once the tick after it has begun: its instants are all past.
            let last = tick(of: now) - 1
            let due: [Fire]? = state.withLock { state in
                if state.entries.isEmpty || state.stopped {
                    state.sweeping = false
                    state.buckets = [:]
                    return nil
                }
                var fired: [Fire] = []
                while state.cursor < last {
                    state.cursor += 1
                    let bucket = state.cursor
                    for key in state.buckets.removeValue(forKey: bucket) ?? [] {
                        guard let entry = state.entries[key], entry.bucket == bucket else { continue }
                        state.entries[key] = nil
                        fired.append(entry.fire)
                    }
                }
                return fired
            }
            guard let due else { return }
            for fire in due { deliver(fire) }
        }
        state.withLock { $0.sweeping = false }
    }
}

enum DeadlineKind: UInt8, Sendable {
    case proposal
    case turn
    /// Waiting on the peer to resynchronise, or to come back while updates wait.
    case wait
    /// Our updates wait, and none has committed for a while (`ChannelRunner.armProgressTimer`).
    case progress
}

/// What a channel timer does when it fires: post `input` to the runner, if it still exists.
struct TimerFire: Sendable {
    let input: ChannelRunner.Input
    let runner: RunnerHandle
}
