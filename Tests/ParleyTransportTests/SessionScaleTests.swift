import ParleyCrypto
import Testing

@testable import ParleyTransport

@Suite("Sessions at scale", .timeLimit(.minutes(3)))
struct SessionScaleTests {
    /// Both ends of 1,000 sessions (2,000 sockets) live on one loop; every session carries
    /// traffic at the same time, and closing them all frees every connection.
    @Test(.enabled(if: Loopback.openFileLimit >= 2_500, "needs 2,500 file descriptors; raise ulimit -n to run it"))
    func thousandConcurrentSessionsOnOneLoop() async throws {
        try await withEventLoop { loop in
            // 2,000 handshakes share one loop thread, and under a loaded machine (the whole
            // suite on two cores) one can take seconds: this test is about scale, not timeouts.
            // All 1,000 dialers call from 127.0.0.1, 100 at a time.
            let config = SessionConfig(connectTimeout: .seconds(60), handshakeTimeout: .seconds(60))
                .liftingPerAddressHandshakeBounds()
            let server = try await ListeningPeer.start(on: loop, config: config)
            let baseline = try await loop.openHandleCount()
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: config)
            let sessionCount = 1_000
            let dialsInFlight = 100
            var sessions: [Session] = []
            try await withThrowingTaskGroup(of: Session.self) { group in
                for index in 0..<sessionCount {
                    if index >= dialsInFlight, let session = try await group.next() { sessions.append(session) }
                    group.addTask { try await dialer.connect(to: server.address, expecting: server.key) }
                }
                for try await session in group { sessions.append(session) }
            }
            let accepted = server.sessions
            #expect(await eventually(within: .seconds(30)) { accepted.all.count == sessionCount })
            #expect(loop.liveConnectionCount == 2 * sessionCount)

            // Every accepted session answers each message with its own index; every dialer
            // sends three and must get three answers back.
            let messages = 3
            try await withThrowingTaskGroup(of: Void.self) { group in
                for session in accepted.all {
                    group.addTask {
                        for await event in session.events {
                            guard case let .message(bytes) = event else { return }
                            try await session.send(bytes.reversed())
                        }
                    }
                }
                for (index, session) in sessions.enumerated() {
                    group.addTask {
                        let tag = withUnsafeBytes(of: UInt16(index).bigEndian) { Array($0) }
                        for _ in 0..<messages { try await session.send(tag) }
                        let echoes = try await receiveMessages(messages, from: session)
                        #expect(echoes == Array(repeating: tag.reversed(), count: messages))
                        session.close(reason: "done")
                    }
                }
                try await group.waitForAll()
            }
            for session in accepted.all { _ = await session.waitUntilClosed() }
            #expect(try await eventually(within: .seconds(20)) { try await loop.openHandleCount() == baseline })
            // Closed sessions the test no longer holds free their connections.
            sessions.removeAll()
            accepted.removeAll()
            #expect(await eventually(within: .seconds(20)) { loop.liveConnectionCount == 0 })
        }
    }
}
