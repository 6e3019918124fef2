import Foundation
import ParleyCrypto
import ParleyLocks
import ParleySubprocess
import ParleyTransport

/// Echo round trips over real sessions between two loops of this process.
package struct TransportBench {
    static let warmUp = Duration.milliseconds(300)

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
        let counter = RoundTripTally()
        let progress = isatty(STDERR_FILENO) != 0
            ? Task { await counter.show(from: warmUpEnd, until: end) } : nil
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in dialed {
                group.addTask {
                    try await pingPong(session, message: message, warmUpEnd: warmUpEnd, end: end, counter: counter)
                }
            }
            try await group.waitForAll()
        }
        progress?.cancel()
        await progress?.value
        for session in dialed { session.close(reason: "bench finished") }
        await listener.close()

        let latencies = counter.latencies
        return TransportBenchResult(
            sessions: sessions, payloadBytes: payload, roundTrips: latencies.count, seconds: seconds,
            p50Micros: latencies.micros(at: 0.50), p99Micros: latencies.micros(at: 0.99))
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
    counter: RoundTripTally
) async throws {
    var measured = 0
    var iterator = session.events.makeAsyncIterator()
    while true {
        let start = ContinuousClock.now
        guard start < end else { return }
        try await session.send(message)
        guard case .message = await iterator.next() else {
            throw TransportBenchError.sessionEnded(measured)
        }
        if start >= warmUpEnd {
            measured += 1
            counter.add(start.duration(to: .now))
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

/// The measured round trips of every session, and the progress line drawn from their count.
private final class RoundTripTally: Sendable {
    private let recorded = Locked(LatencyRecorder())

    func add(_ latency: Duration) { recorded.withLock { $0.record(latency) } }

    var latencies: LatencyRecorder { recorded.withLock { $0 } }

    var total: Int { recorded.withLock { $0.count } }

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

    init(sessions: Int, payloadBytes: Int, roundTrips: Int, seconds: Double, p50Micros: Double, p99Micros: Double) {
        self.sessions = sessions
        self.payloadBytes = payloadBytes
        self.roundTrips = roundTrips
        self.seconds = seconds
        roundTripsPerSecond = Reporting.rounded(Double(roundTrips) / seconds, digits: 1)
        self.p50Micros = Reporting.rounded(p50Micros, digits: 1)
        self.p99Micros = Reporting.rounded(p99Micros, digits: 1)
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
