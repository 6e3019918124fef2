import ParleyLocks
import ParleyNode

/// Collects one node's events so the demo can wait for them.
final class EventLog: Sendable {
    private let events = Locked<[NodeEvent]>([])

    init(_ node: Node) {
        let stream = node.events
        Task { for await event in stream { self.events.withLock { $0.append(event) } } }
    }

    func first<T>(_ match: (NodeEvent) -> T?) -> T? {
        let all = events.withLock { $0 }
        return all.lazy.compactMap(match).first
    }

    /// Waits up to `timeout` for an event `match` accepts.
    func wait<T>(for what: String, timeout: Duration = .seconds(30), _ match: @escaping (NodeEvent) -> T?) async throws -> T {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let found = first(match) { return found }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw DemoFailure("timed out after \(timeout) waiting for \(what)")
    }
}
