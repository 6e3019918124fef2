import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyTransport

/// What one hostile connection does before it drops.
private enum Misbehaviour: CaseIterable {
    /// Connects and closes at once.
    case dropAtOnce
    /// Sends random bytes, then closes.
    case garbage
    /// Announces a frame far above any limit, then closes.
    case hugeLengthPrefix
    /// Sends a valid first handshake message, then closes without finishing.
    case halfHandshake

    func run(on loop: EventLoop, against server: ListeningPeer, random: inout SeededRandom) async throws {
        let connection = try await loop.dial(to: server.address, timeout: .seconds(10))
        switch self {
        case .dropAtOnce:
            break
        case .garbage:
            try await connection.send((0..<64).map { _ in UInt8.random(in: 0...255, using: &random) })
        case .hugeLengthPrefix:
            try await connection.send([0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        case .halfHandshake:
            let initiator = HandshakeInitiator(identity: SigningKey(), expectedPeer: server.key)
            try await connection.send(Handshake.frame(initiator.start()))
        }
        connection.close(reason: "attacker drops")
    }
}

/// Sends and echoes small messages on one session until stopped; counts round trips.
private func keepRoundTripping(_ session: Session, _ accepted: Session, until stop: Locked<Bool>) async throws -> Int {
    let echo = Task {
        for await event in accepted.events {
            guard case let .message(bytes) = event else { return }
            try await accepted.send(bytes)
        }
    }
    defer { echo.cancel() }
    var iterator = session.events.makeAsyncIterator()
    var rounds = 0
    while !stop.withLock({ $0 }) {
        try await session.send([UInt8(truncatingIfNeeded: rounds)])
        guard case let .message(bytes) = await iterator.next(), bytes == [UInt8(truncatingIfNeeded: rounds)] else {
            Issue.record("the established session broke after \(rounds) round trips")
            return rounds
        }
        rounds += 1
    }
    return rounds
}

/// The server loop's open handles and live connection objects, for leak checks.
private struct LoopFootprint: Equatable, CustomStringConvertible {
    let handles: Int
    let connections: Int

    static func of(_ loop: EventLoop) async throws -> LoopFootprint {
        LoopFootprint(handles: try await loop.openHandleCount(), connections: loop.liveConnectionCount)
    }

    var description: String { "\(handles) handles, \(connections) connection objects" }
}

/// Waits until the loop's footprint is back to `baseline`, plus `stillReferenced` closed
/// connections whose sessions the test itself still holds; records the difference if not.
private func expectFootprint(
    of loop: EventLoop, returnsTo baseline: LoopFootprint, stillReferenced: Int = 0
) async throws {
    let expected = LoopFootprint(handles: baseline.handles, connections: baseline.connections + stillReferenced)
    let settled = try await eventually(within: .seconds(20)) { try await LoopFootprint.of(loop) == expected }
    let now = try await LoopFootprint.of(loop)
    #expect(settled, "server loop holds \(now), expected \(expected)")
}

/// Each attack runs against a server on its own loop while an honest session keeps
/// working, and afterwards the server loop must hold exactly what it held before:
/// same open libuv handles, same `TCPConnection` objects in memory.
@Suite("Hostile peers", .timeLimit(.minutes(2)))
struct HostilePeerTests {
    @Test func connectionStormLeavesNothingBehindAndDoesNotDisturbAnEstablishedSession() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let server = try await ListeningPeer.start(on: serverLoop)
                let honest = try await SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: testConfig)
                    .connect(to: server.address, expecting: server.key)
                let accepted = try await server.session()
                let baseline = try await LoopFootprint.of(serverLoop)

                let stop = Locked(false)
                let traffic = Task { try await keepRoundTripping(honest, accepted, until: stop) }
                let seed = UInt64.random(in: 0...UInt64.max)
                let waves = 20
                let perWave = 100
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for wave in 0..<waves {
                        for index in 0..<perWave {
                            let kind = Misbehaviour.allCases[index % Misbehaviour.allCases.count]
                            group.addTask {
                                var random = SeededRandom(seed: seed &+ UInt64(wave * perWave + index))
                                try await kind.run(on: clientLoop, against: server, random: &random)
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                let endpoint = server.endpoint
                #expect(await eventually(within: .seconds(20)) { endpoint.pendingHandshakeCount == 0 })
                stop.withLock { $0 = true }
                let rounds = try await traffic.value
                #expect(rounds > 0, "no round trip completed during the storm (seed \(seed))")
                #expect(server.sessions.all.count == 1, "an attacker became a session")
                // Garbage and huge prefixes fail the handshake; clean drops are reported as transport closes.
                #expect(endpoint.failedHandshakeCount == waves * perWave)
                try await expectFootprint(of: serverLoop, returnsTo: baseline)
                try await honest.send([7])
                #expect(try await receiveMessages(1, from: accepted) == [[7]])
            }
        }
    }

    @Test func slowlorisHandshakesAreCutAtTheTimeoutWhileHonestPeersGetIn() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                // Every attacker calls from 127.0.0.1, like the honest dialer: this test is about
                // the timeout, not the per-address bound.
                let config = SessionConfig(handshakeTimeout: .milliseconds(400), maxPendingHandshakes: 256)
                    .liftingPerAddressHandshakeBounds()
                let server = try await ListeningPeer.start(on: serverLoop, config: config)
                let baseline = try await LoopFootprint.of(serverLoop)
                let attackers = 200
                var stalled: [ByteInbox] = []
                for _ in 0..<attackers {
                    let connection = try await clientLoop.dial(to: server.address, timeout: .seconds(10))
                    let inbox = ByteInbox()
                    inbox.attach(to: connection)
                    // Half of a length prefix, then nothing.
                    try await connection.send([0, 0])
                    stalled.append(inbox)
                }
                // Below the pending limit an honest dialer still gets a session.
                let honest = try await SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                    .connect(to: server.address, expecting: server.key)
                for inbox in stalled {
                    #expect(try await withDeadline(.seconds(20)) { await inbox.waitForClose() } == .peerClosed)
                }
                let failures = server.failures
                #expect(await eventually(within: .seconds(10)) {
                    failures.all.filter { $0 == .handshakeTimeout }.count == attackers
                })
                honest.close(reason: "done")
                _ = try await server.session().waitUntilClosed()
                try await expectFootprint(of: serverLoop, returnsTo: baseline, stillReferenced: 1)
            }
        }
    }

    @Test func fastSenderThatNeverReadsIsBoundedAndOthersKeepWorking() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let config = SessionConfig(
                    handshakeTimeout: .seconds(5), receiveHighWater: 256 << 10, receiveLowWater: 64 << 10,
                    sendWatermarks: TCPConnection.Watermarks(high: 256 << 10, low: 64 << 10))
                let server = try await ListeningPeer.start(on: serverLoop, config: config)
                let baseline = try await LoopFootprint.of(serverLoop)

                // The attacker floods 16 KiB messages and never reads the echoes.
                let attacker = try await RawDialer.handshake(on: clientLoop, to: server.address, expecting: server.key)
                attacker.connection.pauseReading()
                let victim = try await server.session(0)
                let echo = Task {
                    for await event in victim.events {
                        guard case let .message(bytes) = event else { return }
                        try await victim.send(bytes)
                    }
                }
                let frameSize = 16 << 10
                let flood = Task {
                    var sealer = FrameSealer(session: attacker.keys)
                    let payload = [SessionFrameKind.data.rawValue] + [UInt8](repeating: 0x5a, count: frameSize)
                    while !Task.isCancelled { try await attacker.connection.send(sealer.sealFrame(payload)) }
                }
                // The victim's send queue fills, its app stops taking messages, its inbox
                // fills past the high-water mark and it stops reading the socket (reading
                // resumes only at the low-water mark, so the inbox may sit anywhere between).
                let queue = victim.connection
                #expect(await eventually(within: .seconds(20)) {
                    queue.bytesQueued >= config.sendWatermarks.high && victim.events.undeliveredBytes > config.receiveLowWater
                        && attacker.connection.bytesQueued >= TCPConnection.Watermarks.default.high
                }, "victim queue \(queue.bytesQueued), inbox \(victim.events.undeliveredBytes), attacker queue \(attacker.connection.bytesQueued)")
                // From then on nothing moves: the attacker is the one who waits.
                let held = (victim.events.undeliveredBytes, queue.bytesQueued)
                try await Task.sleep(for: .milliseconds(200))
                #expect(victim.events.undeliveredBytes == held.0 && queue.bytesQueued == held.1)

                // Meanwhile an honest session on the same server loop works normally.
                let honest = try await SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                    .connect(to: server.address, expecting: server.key)
                let honestAccepted = try await server.session(1)
                let stop = Locked(false)
                let traffic = Task { try await keepRoundTripping(honest, honestAccepted, until: stop) }
                try await Task.sleep(for: .milliseconds(300))
                stop.withLock { $0 = true }
                #expect(try await traffic.value > 0)

                // Memory held for the attacker stays at the configured bounds.
                let frameBytes = 4 + frameSize + 1 + AEAD.tagBytes
                #expect(victim.events.undeliveredBytes <= config.receiveHighWater + EventLoop.readBufferSize + frameBytes)
                #expect(queue.peakBytesQueued < config.sendWatermarks.high + frameBytes)

                attacker.connection.close(reason: "attacker leaves")
                flood.cancel()
                _ = await victim.waitUntilClosed()
                _ = try? await echo.value
                _ = try? await flood.value
                honest.close(reason: "done")
                _ = await honestAccepted.waitUntilClosed()
                try await expectFootprint(of: serverLoop, returnsTo: baseline, stillReferenced: 2)
            }
        }
    }
}
