import ParleyCrypto
import ParleyWire
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@testable import ParleyTransport

@Suite("Sessions over loopback TCP", .timeLimit(.minutes(1)))
struct SessionTests {
    @Test func handshakeSucceedsBothWaysAndListenerLearnsTheDialersKey() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let dialerKey = SigningKey()
            let dialer = SessionEndpoint(identity: dialerKey, loop: loop, config: testConfig)
            let session = try await dialer.connect(to: server.address, expecting: server.key)
            #expect(session.peer == server.key)
            let accepted = try await server.session()
            #expect(accepted.peer == dialerKey.publicKey)
            try await session.send(Array("hello".utf8))
            try await accepted.send(Array("world".utf8))
            #expect(try await receiveMessages(1, from: accepted) == [Array("hello".utf8)])
            #expect(try await receiveMessages(1, from: session) == [Array("world".utf8)])
            #expect(server.endpoint.pendingHandshakeCount == 0)
            session.close(reason: "done")
            #expect(await accepted.waitUntilClosed() == .peerClosed("done"))
            #expect(await session.waitUntilClosed() == .localClose("done"))
        }
    }

    @Test func wrongExpectedKeyFailsTheDialerAndTheListenerRecordsIt() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
            let impostor = SigningKey().publicKey
            await #expect(throws: SessionError.notEstablished(.handshakeFailed(.unexpectedPeer(expected: impostor, got: server.key)))) {
                _ = try await dialer.connect(to: server.address, expecting: impostor)
            }
            let failures = server.failures
            #expect(await eventually(within: .seconds(10)) { failures.all.count == 1 })
            #expect(server.sessions.all.isEmpty)
            #expect(server.endpoint.failedHandshakeCount == 1)
        }
    }

    @Test func refusedKeyNeverReachesOnSession() async throws {
        try await withEventLoop { loop in
            let dialerKey = SigningKey()
            let server = try await ListeningPeer.start(on: loop, accept: { $0 != dialerKey.publicKey })
            let dialer = SessionEndpoint(identity: dialerKey, loop: loop, config: testConfig)
            // The dialer finishes first; the refusal shows as the listener closing at once.
            if let session = try? await dialer.connect(to: server.address, expecting: server.key) {
                _ = try await withDeadline(.seconds(10)) { await session.waitUntilClosed() }
            }
            let failures = server.failures
            #expect(await eventually(within: .seconds(10)) { !failures.all.isEmpty })
            #expect(failures.all == [.handshakeFailed(.peerRefused(dialerKey.publicKey))])
            #expect(server.sessions.all.isEmpty)
        }
    }

    @Test func thousandMessagesArriveInOrderBothWays() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
            let session = try await dialer.connect(to: server.address, expecting: server.key)
            let accepted = try await server.session()
            let count = 1_000
            let expected = (0..<count).map { index in withUnsafeBytes(of: UInt32(index).bigEndian) { Array($0) } }
            async let toListener = receiveMessages(count, from: accepted)
            async let toDialer = receiveMessages(count, from: session)
            for message in expected {
                try await session.send(message)
                try await accepted.send(message)
            }
            #expect(try await toListener == expected)
            #expect(try await toDialer == expected)
        }
    }

    @Test(arguments: ["flipped", "replayed", "reordered"])
    func badFrameClosesTheSessionAsTamperedAndOthersKeepWorking(_ attack: String) async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let raw = try await RawDialer.handshake(on: loop, to: server.address, expecting: server.key)
            let victim = try await server.session()
            let honest = try await SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
                .connect(to: server.address, expecting: server.key)
            let bystander = try await server.session(1)

            var sealer = FrameSealer(session: raw.keys)
            let first = try sealer.sealFrame([SessionFrameKind.data.rawValue, 1])
            let second = try sealer.sealFrame([SessionFrameKind.data.rawValue, 2])
            var expectedIndex: UInt64 = 0
            switch attack {
            case "flipped":
                var bad = first
                bad[bad.count - 3] ^= 0x01
                try await raw.connection.send(bad)
            case "replayed":
                try await raw.connection.send(first + first)
                expectedIndex = 1
            default:
                try await raw.connection.send(second + first)
            }
            let reason = try await withDeadline(.seconds(10)) { await victim.waitUntilClosed() }
            #expect(reason == .tampered(frameIndex: expectedIndex))
            _ = try await withDeadline(.seconds(10)) { await raw.inbox.waitForClose() }

            try await honest.send([7])
            #expect(try await receiveMessages(1, from: bystander) == [[7]])
        }
    }

    @Test func framesWrittenTogetherWithTheAuthAreNotLost() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let connection = try await loop.dial(to: server.address, timeout: .seconds(5))
            let inbox = ByteInbox()
            inbox.attach(to: connection)
            var initiator = HandshakeInitiator(identity: SigningKey(), expectedPeer: server.key)
            try await connection.send(Handshake.frame(initiator.start()))
            let length = try await inbox.read(exactly: 4).reduce(0) { $0 << 8 | Int($1) }
            let (auth, keys) = try initiator.receive(try await inbox.read(exactly: length))
            var sealer = FrameSealer(session: keys)
            // One write: the listener's decoder holds both frames when the handshake ends.
            let burst = try Handshake.frame(auth)
                + sealer.sealFrame([SessionFrameKind.data.rawValue, 1])
                + sealer.sealFrame([SessionFrameKind.data.rawValue, 2])
            try await connection.send(burst)
            let accepted = try await server.session()
            #expect(try await receiveMessages(2, from: accepted) == [[1], [2]])
        }
    }

    @Test func unknownKindIsAProtocolViolation() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let raw = try await RawDialer.handshake(on: loop, to: server.address, expecting: server.key)
            let victim = try await server.session()
            var sealer = FrameSealer(session: raw.keys)
            try await raw.connection.send(sealer.sealFrame([0x7f]))
            let reason = try await withDeadline(.seconds(10)) { await victim.waitUntilClosed() }
            guard case .protocolViolation = reason else {
                Issue.record("expected a protocol violation, got \(reason)")
                return
            }
        }
    }

    @Test func oversizeLengthAfterTheHandshakeIsAProtocolViolation() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let raw = try await RawDialer.handshake(on: loop, to: server.address, expecting: server.key)
            let victim = try await server.session()
            try await raw.connection.send([0x7f, 0xff, 0xff, 0xff])
            let reason = try await withDeadline(.seconds(10)) { await victim.waitUntilClosed() }
            guard case .protocolViolation = reason else {
                Issue.record("expected a protocol violation, got \(reason)")
                return
            }
        }
    }

    @Test(arguments: [
        ("garbage", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
        ("huge length", [0xff, 0xff, 0xff, 0xff, 0x00]),
    ])
    func hostileBytesBeforeTheHandshakeAreClosedWithoutASession(_ name: String, _ bytes: [UInt8]) async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop, config: SessionConfig(handshakeTimeout: .seconds(30)))
            let connection = try await loop.dial(to: server.address, timeout: .seconds(5))
            let inbox = ByteInbox()
            inbox.attach(to: connection)
            try await connection.send(bytes)
            // Closed by the listener, long before the 30 s handshake timeout.
            #expect(try await withDeadline(.seconds(10)) { await inbox.waitForClose() } == .peerClosed)
            let failures = server.failures.all
            #expect(failures.count == 1)
            if name == "huge length" { #expect(failures == [.handshakeFailed(.oversize)]) }
            #expect(server.sessions.all.isEmpty)
            #expect(server.endpoint.pendingHandshakeCount == 0)
        }
    }

    @Test func silentConnectionIsClosedAfterTheHandshakeTimeout() async throws {
        try await withEventLoop { loop in
            let config = SessionConfig(handshakeTimeout: .milliseconds(200))
            let server = try await ListeningPeer.start(on: loop, config: config)
            let connection = try await loop.dial(to: server.address, timeout: .seconds(5))
            let inbox = ByteInbox()
            inbox.attach(to: connection)
            #expect(try await withDeadline(.seconds(10)) { await inbox.waitForClose() } == .peerClosed)
            #expect(server.failures.all == [.handshakeTimeout])
            #expect(server.sessions.all.isEmpty)
        }
    }

    @Test func listenerThatNeverRepliesTimesTheDialerOut() async throws {
        guard let mute = Loopback.rawListener(family: .ipv4, backlog: 1) else {
            Issue.record("could not open a raw listener")
            return
        }
        defer { close(mute.descriptor) }
        try await withEventLoop { loop in
            let config = SessionConfig(handshakeTimeout: .milliseconds(200))
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: config)
            await #expect(throws: SessionError.notEstablished(.handshakeTimeout)) {
                _ = try await dialer.connect(to: mute.address, expecting: SigningKey().publicKey)
            }
        }
    }

    @Test func manyDroppedConnectionsLeakNothingAndTheListenerStillServes() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            for _ in 0..<10 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<50 {
                        group.addTask {
                            let connection = try await loop.dial(to: server.address, timeout: .seconds(5))
                            connection.close(reason: "drop")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let endpoint = server.endpoint
            #expect(await eventually(within: .seconds(15)) { endpoint.pendingHandshakeCount == 0 })
            let session = try await SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
                .connect(to: server.address, expecting: server.key)
            let accepted = try await server.session()
            try await session.send([42])
            #expect(try await receiveMessages(1, from: accepted) == [[42]])
            #expect(server.endpoint.pendingHandshakeCount == 0)
        }
    }

    @Test func connectionsBeyondThePendingLimitAreClosedAtOnce() async throws {
        try await withEventLoop { loop in
            let config = SessionConfig(handshakeTimeout: .seconds(30), maxPendingHandshakes: 2)
            let server = try await ListeningPeer.start(on: loop, config: config)
            var idle: [TCPConnection] = []
            for _ in 0..<2 { idle.append(try await loop.dial(to: server.address, timeout: .seconds(5))) }
            let endpoint = server.endpoint
            #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 2 })
            let extra = try await loop.dial(to: server.address, timeout: .seconds(5))
            let inbox = ByteInbox()
            inbox.attach(to: extra)
            #expect(try await withDeadline(.seconds(10)) { await inbox.waitForClose() } == .peerClosed)
            #expect(server.failures.all == [.tooManyPendingHandshakes])
            for connection in idle { connection.close() }
            #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 0 })
        }
    }

    @Test func idleSessionStaysOpenWhileKeepalivesFlow() async throws {
        try await withEventLoop { loop in
            var config = testConfig
            config.keepaliveInterval = .milliseconds(50)
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop, config: config)
            // Whoever is idle longer pings; the other side answers, which also counts as sending.
            let counts = { @Sendable () async throws -> (pings: Int, pongs: Int) in
                try await loop.submit {
                    (session.pingsReceived + accepted.pingsReceived, session.pongsReceived + accepted.pongsReceived)
                }
            }
            #expect(try await eventually(within: .seconds(10)) {
                let (pings, pongs) = try await counts()
                return pings >= 3 && pongs >= 3
            })
            #expect(try await loop.submit { session.pingsSent + accepted.pingsSent } >= 3)
            try await session.send([1])
            #expect(try await receiveMessages(1, from: accepted) == [[1]])
        }
    }

    @Test func peerThatNeverSendsIsReportedSilentAndTheSessionStaysOpen() async throws {
        try await withEventLoop { loop in
            // The handshake keeps the loaded-machine timeouts of `testConfig`: with the 5 s
            // default, CI once saw this session closed under it.
            var config = testConfig
            config.keepaliveInterval = .milliseconds(50)
            config.silenceInterval = .milliseconds(300)
            let server = try await ListeningPeer.start(on: loop, config: config)
            let raw = try await RawDialer.handshake(on: loop, to: server.address, expecting: server.key)
            let accepted = try await server.session()
            let event = try await withDeadline(.seconds(10)) { () -> SessionEvent? in
                for await event in accepted.events { return event }
                return nil
            }
            guard case .peerSilent = event else {
                Issue.record("expected peerSilent, got \(String(describing: event))")
                return
            }
            // Pings went out meanwhile, and the session is still open.
            #expect(try await loop.submit { accepted.pingsSent } > 0)
            var sealer = FrameSealer(session: raw.keys)
            try await raw.connection.send(sealer.sealFrame([SessionFrameKind.data.rawValue, 9]))
            #expect(try await receiveMessages(1, from: accepted) == [[9]])
        }
    }

    @Test func slowApplicationPausesReadingAndLosesNothing() async throws {
        try await withEventLoop { loop in
            var config = testConfig
            config.receiveHighWater = 64 << 10
            config.receiveLowWater = 16 << 10
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop, config: config)
            let count = 200
            let payload = [UInt8](repeating: 0xab, count: 16 << 10)
            let sender = Task {
                for _ in 0..<count { try await session.send(payload) }
            }
            // Nobody reads yet: the inbox stops near the high-water mark.
            let events = accepted.events
            #expect(await eventually(within: .seconds(10)) { events.undeliveredBytes > 64 << 10 })
            try await Task.sleep(for: .milliseconds(100))
            #expect(events.undeliveredBytes <= (64 << 10) + EventLoop.readBufferSize + (16 << 10))
            #expect(try await receiveMessages(count, from: accepted).count == count)
            try await sender.value
            #expect(session.connection.peakBytesQueued < config.sendWatermarks.high + payload.count + 64)
        }
    }

    @Test func hundredConcurrentSessionsOnOneLoop() async throws {
        try await withEventLoop { loop in
            // All 100 dialers call from 127.0.0.1 at once.
            let server = try await ListeningPeer.start(on: loop, config: testConfig.liftingPerAddressHandshakeBounds())
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
            let sessionCount = 100
            let messages = 20
            let sessions = try await withThrowingTaskGroup(of: Session.self) { group in
                for _ in 0..<sessionCount {
                    group.addTask { try await dialer.connect(to: server.address, expecting: server.key) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let sessionsSeen = server.sessions
            #expect(await eventually(within: .seconds(10)) { sessionsSeen.all.count == sessionCount })
            try await withThrowingTaskGroup(of: Void.self) { group in
                for accepted in server.sessions.all {
                    group.addTask {
                        let received = try await receiveMessages(messages, from: accepted)
                        #expect(received == (0..<messages).map { [UInt8($0)] })
                    }
                }
                for session in sessions {
                    group.addTask {
                        for index in 0..<messages { try await session.send([UInt8(index)]) }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func roundTripMeasurement() async throws {
        try await withEventLoop { loop in
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop)
            let rounds = 2_000
            let echo = Task {
                var seen = 0
                for await event in accepted.events {
                    guard case let .message(bytes) = event else { break }
                    try await accepted.send(bytes)
                    seen += 1
                    if seen == rounds { break }
                }
            }
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                var iterator = session.events.makeAsyncIterator()
                for index in 0..<rounds {
                    try await session.send(withUnsafeBytes(of: UInt32(index)) { Array($0) })
                    guard case .message = await iterator.next() else {
                        Issue.record("the echo stopped at round \(index)")
                        return
                    }
                }
            }
            try await echo.value
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("session round trips: \(rounds) in \(elapsed) (\(Int(Double(rounds) / max(seconds, 1e-9)))/s, debug build)")
        }
    }
}
