import Foundation
import ParleyCrypto
import ParleyLocks
import ParleySubprocess
import ParleyTransport

/// Echo round trips over real sessions between two loops of this process.
package struct TransportBench {
    static let warmUp = Duration.milliseconds(300)
    /// Latencies kept per session: enough for a stable p99 without unbounded memory.
    static let maxSamplesPerSession = 200_000

    let sessions: Int
    let seconds: Double
    let payload: Int

    package init(sessions: Int, seconds: Double, payload: Int) {
        self.sessions = sessions
        self.seconds = seconds
        self.payload = payload
    }

    package func run() async throws -> TransportBenchResult {
        let serverLoop = try EventLoop(name: "bench-listen")
        let clientLoop = try EventLoop(name: "bench-dial")
        defer {
            clientLoop.shutdown()
            serverLoop.shutdown()
        }
        let serverKey = SigningKey()
        let clientKey = SigningKey()
        // Every session dials from 127.0.0.1 at once: lift the per-address handshake bounds,
        // which exist to stop one hostile source, not a benchmark of our own.
        var config = SessionConfig(maxPendingHandshakes: max(SessionConfig.defaultMaxPendingHandshakes, sessions))
        config.maxPendingHandshakesPerAddress = config.maxPendingHandshakes
        config.handshakeRate = .unlimited
        let server = SessionEndpoint(identity: serverKey, loop: serverLoop, config: config)
        let listener = try await server.listen(
            on: .loopbackIPv4(port: 0), acceptPeer: { $0 == clientKey.publicKey },
            onSession: { session in Task { await echo(session) } })
        let client = SessionEndpoint(identity: clientKey, loop: clientLoop, config: config)
        var dialed: [Session] = []
        for _ in 0..<sessions {
            dialed.append(try await client.connect(to: listener.localAddress, expecting: serverKey.publicKey))
        }

        let message = [UInt8](repeating: 0x42, count: payload)
        let warmUpEnd = ContinuousClock.now + Self.warmUp
        let end = warmUpEnd + .nanoseconds(Int64(seconds * 1e9))
        let counter = ProgressCounter()
        let progress = isatty(STDERR_FILENO) != 0
            ? Task { await counter.show(from: warmUpEnd, until: end) } : nil
        let perSession = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for session in dialed {
                group.addTask {
                    try await pingPong(session, message: message, warmUpEnd: warmUpEnd, end: end, counter: counter)
                }
            }
            return try await group.reduce(into: [[Duration]]()) { $0.append($1) }
        }
        progress?.cancel()
        await progress?.value
        for session in dialed { session.close(reason: "bench finished") }
        await listener.close()

        var latencies = perSession.flatMap { $0 }
        latencies.sort()
        return TransportBenchResult(
            sessions: sessions, payloadBytes: payload, roundTrips: counter.total, seconds: seconds,
            p50: percentile(latencies, 0.50), p99: percentile(latencies, 0.99))
    }
}

private func echo(_ session: Session) async {
    for await event in session.events {
        guard case let .message(bytes) = event else { continue }
        do { try await session.send(bytes) } catch { return }
    }
}

/// One message in flight on `session` until `end`; round trips after `warmUpEnd` count.
private func pingPong(
    _ session: Session, message: [UInt8], warmUpEnd: ContinuousClock.Instant, end: ContinuousClock.Instant,
    counter: ProgressCounter
) async throws -> [Duration] {
    var samples: [Duration] = []
    samples.reserveCapacity(1024)
    var iterator = session.events.makeAsyncIterator()
    while true {
        let start = ContinuousClock.now
        guard start < end else { return samples }
        try await session.send(message)
        guard case .message = await iterator.next() else {
            throw TransportBenchError.sessionEnded(samples.count)
        }
        if start >= warmUpEnd {
            counter.add()
            if samples.count < TransportBench.maxSamplesPerSession { samples.append(start.duration(to: .now)) }
        }
    }
}

private enum TransportBenchError: Error, CustomStringConvertible {
    case sessionEnded(Int)

    var description: String {
        switch self {
        case let .sessionEnded(rounds): "a session ended after \(rounds) measured round trips"
        }
    }
}

private func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
    guard !sorted.isEmpty else { return .zero }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
}

/// Counts measured round trips across sessions, and draws the progress line.
private final class ProgressCounter: Sendable {
    private let count = Locked(0)

    func add() { count.withLock { $0 += 1 } }

    var total: Int { count.withLock { $0 } }

    func show(from start: ContinuousClock.Instant, until end: ContinuousClock.Instant) async {
        await Terminal.showProgressLine(every: .milliseconds(250)) {
            let now = ContinuousClock.now
            guard now > start else { return nil }
            let elapsed = Reporting.seconds(start.duration(to: min(now, end)))
            let left = max(0, Reporting.seconds(now.duration(to: end)))
            return String(format: "%d round trips, %.0f/s, %.1f s left", total, Double(total) / elapsed, left)
        }
    }
}

/// What `parley transport bench` prints.
package struct TransportBenchResult: Encodable {
    var sessions: Int
    var payloadBytes: Int
    var roundTrips: Int
    var seconds: Double
    var roundTripsPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    var build: String

    init(sessions: Int, payloadBytes: Int, roundTrips: Int, seconds: Double, p50: Duration, p99: Duration) {
        self.sessions = sessions
        self.payloadBytes = payloadBytes
        self.roundTrips = roundTrips
        self.seconds = seconds
        roundTripsPerSecond = Reporting.rounded(Double(roundTrips) / seconds, digits: 1)
        p50Micros = Reporting.rounded(Reporting.seconds(p50) * 1e6, digits: 1)
        p99Micros = Reporting.rounded(Reporting.seconds(p99) * 1e6, digits: 1)
        build = Reporting.buildConfiguration
    }

    package var text: String {
        """
        \(Reporting.plural(sessions, "session")), \(payloadBytes)-byte messages, \(String(format: "%.1f", seconds)) s (\(build) build): \
        \(Int(roundTripsPerSecond)) encrypted round trips/s
        one round trip: p50 \(p50Micros) µs, p99 \(p99Micros) µs
        """
    }
}
