import Foundation
import ParleyCrypto
import Testing

@testable import ParleyTransport

/// Records a link's events for a test to wait on.
private final class LinkEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [PeerLink.Event] = []

    func append(_ event: PeerLink.Event) {
        lock.withLock { events.append(event) }
    }

    var connections: [Session] {
        lock.withLock { events.compactMap { if case let .connected(session) = $0 { session } else { nil } } }
    }

    var disconnections: Int {
        lock.withLock { events.filter { if case .disconnected = $0 { true } else { false } }.count }
    }

    var failures: Int {
        lock.withLock { events.filter { if case .attemptFailed = $0 { true } else { false } }.count }
    }

    /// Polls until `condition` holds, or fails the test after `deadline` worth of polls.
    /// Counted in polls, not wall time: while other tests hold the cooperative pool for
    /// seconds on a loaded machine, neither this loop nor the link it waits for runs, and a
    /// wall-clock deadline expired during such a stall (a CI-like run failed that way).
    func wait(_ what: String, deadline: Duration = .seconds(20), until condition: () -> Bool) async throws {
        let interval = Duration.milliseconds(10)
        var polls = Int((deadline / interval).rounded(.up))
        while !condition() {
            guard polls > 0 else { throw TestDeadlineExceeded(deadline: deadline) }
            polls -= 1
            try await Task.sleep(for: interval)
        }
    }
}

@Suite struct PeerLinkTests {
    private let fastRetry = RetryPolicy(
        initialDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), maxAttempts: 3, jitter: .none)

    @Test func linkRedialsAfterTheListenerRestarts() async throws {
        try await withEventLoop { loop in
            let listenerKey = SigningKey()
            let dialerKey = SigningKey()
            let config = SessionConfig(dialRetry: fastRetry)
            let server = SessionEndpoint(identity: listenerKey, loop: loop, config: config)
            let client = SessionEndpoint(identity: dialerKey, loop: loop, config: config)
            let accepted = LinkEvents()
            var listener = try await server.listen(on: .loopbackIPv4(port: 0), acceptPeer: { _ in true }) { session in
                accepted.append(.connected(session))
            }
            let address = listener.localAddress

            let events = LinkEvents()
            let link = PeerLink(endpoint: client, peer: listenerKey.publicKey, address: address, retry: fastRetry) {
                events.append($0)
            }
            link.start()
            try await events.wait("first session") { events.connections.count == 1 }
            try await accepted.wait("listener saw the dialer") { accepted.connections.count == 1 }
            #expect(accepted.connections.first?.peer == dialerKey.publicKey)

            // The listener goes away: its sessions end, and nothing answers for a while.
            await listener.close()
            accepted.connections.first?.close(reason: "listener restarting")
            try await events.wait("link noticed") { events.disconnections == 1 }
            try await Task.sleep(for: .milliseconds(100))

            listener = try await server.listen(on: address, acceptPeer: { _ in true }) { session in
                accepted.append(.connected(session))
            }
            try await events.wait("second session") { events.connections.count == 2 }
            let second = try #require(events.connections.last)
            try await second.send(Array("after the restart".utf8))
            await link.stop()
            #expect(await second.waitUntilClosed() == .localClose("link stopped"))
            await listener.close()
            for session in accepted.connections { session.close(reason: "test over") }
        }
    }

    @Test func stoppedLinkDialsNoMore() async throws {
        try await withEventLoop { loop in
            let (descriptor, address) = try #require(Loopback.refusingAddress())
            defer { close(descriptor) }
            let events = LinkEvents()
            let link = PeerLink(
                endpoint: SessionEndpoint(identity: SigningKey(), loop: loop, config: SessionConfig(dialRetry: fastRetry)),
                peer: SigningKey().publicKey, address: address, retry: fastRetry
            ) { events.append($0) }
            link.start()
            try await events.wait("a failed attempt") { events.failures >= 1 }
            await link.stop()
            let after = events.failures
            try await Task.sleep(for: .milliseconds(300))
            #expect(events.failures == after)
            #expect(events.connections.isEmpty)
        }
    }
}
