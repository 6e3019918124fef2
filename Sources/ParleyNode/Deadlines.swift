import ParleyChannel
import Synchronization

/// All of a node's channel timers — the proposal timeout and the turn timeout of every
/// channel — on one task, instead of a task per timer.
///
/// A timer per proposal used to be a `Task` sleeping for the timeout and cancelled when the
/// answer came: a task created, scheduled and torn down for every update on every channel.
/// Here arming and disarming are a dictionary write under a lock, and one sweeper task,
/// alive only while some timer is armed, wakes every `resolution` and fires what is due. A
/// timer fires at most `resolution` late. Timeouts are seconds (proposals) or hundreds of
/// milliseconds (turns in tests), so 10 ms is invisible.
final class Deadlines: Sendable {
    enum Kind: UInt8, Sendable {
        case proposal
        case turn
    }

    struct Key: Hashable, Sendable {
        let channel: ChannelID
        let kind: Kind
    }

    private struct Entry: Sendable {
        let bucket: Int64
        let fire: ChannelRunner.Input
        let runner: RunnerHandle
    }

    private struct State: Sendable {
        var entries: [Key: Entry] = [:]
        /// Keys by the resolution tick they fall due in. Disarmed or re-armed keys are left
        /// behind and skipped when their bucket comes up (the entry no longer names it).
        var buckets: [Int64: [Key]] = [:]
        var sweeping = false
        var stopped = false
    }

    let resolution: Duration
    private let origin = ContinuousClock.now
    private let state = Mutex(State())

    init(resolution: Duration = .milliseconds(10)) {
        self.resolution = resolution
    }

    /// Posts `fire` to `runner` once `delay` has passed, unless disarmed or re-armed first.
    func arm(_ key: Key, after delay: Duration, fire: ChannelRunner.Input, to runner: RunnerHandle) {
        let due = ContinuousClock.now + delay
        let bucket = tick(of: due)
        let startSweeper = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.entries[key] = Entry(bucket: bucket, fire: fire, runner: runner)
            state.buckets[bucket, default: []].append(key)
            defer { state.sweeping = true }
            return !state.sweeping
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

    private func tick(of instant: ContinuousClock.Instant) -> Int64 {
        let elapsed = instant - origin
        let ticks = elapsed / resolution
        return Int64(ticks.rounded(.up))
    }

    private func sweep() async {
        // Buckets before `cursor` are done. Every armed entry falls due at or after now, so
        // starting one tick back misses nothing.
        var cursor = tick(of: .now) - 1
        while true {
            do { try await Task.sleep(for: resolution) } catch { break }
            let now = ContinuousClock.now
            // A bucket is due once the tick after it has begun: its instants are all past.
            let last = tick(of: now) - 1
            let due: [(ChannelRunner.Input, RunnerHandle)]? = state.withLock { state in
                if state.entries.isEmpty || state.stopped {
                    state.sweeping = false
                    state.buckets = [:]
                    return nil
                }
                var fired: [(ChannelRunner.Input, RunnerHandle)] = []
                while cursor < last {
                    cursor += 1
                    for key in state.buckets.removeValue(forKey: cursor) ?? [] {
                        guard let entry = state.entries[key], entry.bucket == cursor else { continue }
                        state.entries[key] = nil
                        fired.append((entry.fire, entry.runner))
                    }
                }
                return fired
            }
            guard let due else { return }
            for (input, runner) in due { runner.post(input) }
        }
        state.withLock { $0.sweeping = false }
    }
}
