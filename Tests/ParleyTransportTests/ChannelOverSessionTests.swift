import ParleyChannel
import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyTransport

/// Drives one channel engine over whatever session is current: the shape a node gives it.
///
/// Inputs run one at a time on the actor; messages leave through an ordered outbox drained
/// by one writer task per session, so the peer sees them in the engine's order.
private actor EngineDriver {
    let name: String
    private(set) var engine: ChannelEngine
    private(set) var events: [ChannelEvent] = []
    /// Fault injection: the next `accept` this side sends is dropped and the session is
    /// closed instead, as if the process lost its connection right after journaling.
    var dropNextAcceptAndDisconnect = false
    private var session: Session?
    private var outbox: AsyncStream<[UInt8]>.Continuation?

    init(name: String, engine: ChannelEngine) {
        self.name = name
        self.engine = engine
    }

    func setDropNextAccept() { dropNextAcceptAndDisconnect = true }

    /// A new session to the peer: the engine runs its reestablish step on it.
    func attach(_ session: Session) {
        self.session = session
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        outbox = continuation
        Task {
            for await bytes in stream {
                do { try await session.send(bytes) } catch { return }
            }
        }
        Task { [weak self] in
            for await event in session.events {
                guard case let .message(bytes) = event else { continue }
                guard let message = try? ChannelMessage(wireBytes: bytes) else {
                    Issue.record("undecodable channel message")
                    continue
                }
                await self?.input(.received(message))
            }
            await self?.detach(session)
        }
        input(.connected)
    }

    /// The session ended: the engine goes offline until the next one.
    func detach(_ ended: Session) {
        guard session === ended else { return }
        session = nil
        outbox?.finish()
        outbox = nil
        input(.disconnected)
    }

    func input(_ input: EngineInput) {
        for effect in engine.handle(input) {
            switch effect {
            case .journal:
                break  // the journal's own tests cover durability; this test is about the link
            case let .send(message):
                if case .accept = message, dropNextAcceptAndDisconnect {
                    dropNextAcceptAndDisconnect = false
                    session?.close(reason: "\(name) crashed after committing")
                    continue
                }
                outbox?.yield(message.wireBytes)
            case let .decide(proposal):
                self.input(.decided(version: proposal.proposed.version, .accept))
            case let .notify(event):
                events.append(event)
            case .scheduleRetry:
                self.input(.retryDue)
            case .disconnect:
                session?.close(reason: "engine asked to reconnect")
            }
        }
    }

    var latest: SignedState { engine.latest }
    var reestablishedCount: Int {
        events.filter { if case .reestablished = $0 { true } else { false } }.count
    }
    var highestSigned: UInt64 { engine.highestSignedVersion }
}

/// Feeds a link's sessions to a driver in the order the link reports them.
private func follow(_ link: AsyncStream<PeerLink.Event>, into driver: EngineDriver) -> Task<Void, Never> {
    Task {
        for await event in link {
            if case let .connected(session) = event { await driver.attach(session) }
        }
    }
}

@Suite("Channels over sessions", .timeLimit(.minutes(1)))
struct ChannelOverSessionTests {
    private let fastRetry = RetryPolicy(
        initialDelay: .milliseconds(20), multiplier: 2, maxDelay: .milliseconds(200), maxAttempts: 3, jitter: .none)

    /// Bob commits Alice's payment, then loses the connection before his countersignature
    /// leaves, and his listener goes away. Alice's link redials until Bob listens again on
    /// the same address; on the new session both engines reestablish, Bob's commit proof
    /// reaches Alice, and payments continue.
    @Test func reestablishRunsOnTheSessionALinkRedialsAfterTheListenerRestarts() async throws {
        try await withEventLoop { loop in
            let aliceKey = SigningKey()
            let bobKey = SigningKey()
            let params = try ChannelParams.random(proposer: aliceKey.publicKey, responder: bobKey.publicKey)
            var (aliceEngine, proposal) = try ChannelEngine.propose(params: params, allocation: Allocation(100, 100), key: aliceKey)
            guard case let .send(.openProposal(open))? = proposal.last else {
                Issue.record("no open proposal")
                return
            }
            var (bobEngine, acceptance) = try ChannelEngine.accept(open, key: bobKey)
            for case let .send(message) in acceptance { _ = aliceEngine.handle(.received(message)) }
            // Opened out of band; from here on the engines only talk over sessions.
            _ = aliceEngine.handle(.disconnected)
            // One version per payment, so the versions below name the payments (no coalescing).
            aliceEngine.maxPaymentsPerUpdate = 1
            _ = bobEngine.handle(.disconnected)
            let alice = EngineDriver(name: "alice", engine: aliceEngine)
            let bob = EngineDriver(name: "bob", engine: bobEngine)

            let config = SessionConfig(dialRetry: fastRetry, handshakeTimeout: .seconds(5))
            let bobEndpoint = SessionEndpoint(identity: bobKey, loop: loop, config: config)
            let (bobSessions, bobSessionSink) = AsyncStream<PeerLink.Event>.makeStream()
            let acceptAlice = { @Sendable (key: PublicKey) in key == aliceKey.publicKey }
            var listener = try await bobEndpoint.listen(on: .loopbackIPv4(port: 0), acceptPeer: acceptAlice) {
                bobSessionSink.yield(.connected($0))
            }
            let address = listener.localAddress
            let bobFollower = follow(bobSessions, into: bob)

            let (aliceLinkEvents, aliceLinkSink) = AsyncStream<PeerLink.Event>.makeStream()
            let failedDials = Locked(0)
            let link = PeerLink(
                endpoint: SessionEndpoint(identity: aliceKey, loop: loop, config: config),
                peer: bobKey.publicKey, address: address, retry: fastRetry
            ) { event in
                if case .attemptFailed = event { failedDials.withLock { $0 += 1 } }
                aliceLinkSink.yield(event)
            }
            let aliceFollower = follow(aliceLinkEvents, into: alice)
            link.start()

            #expect(await eventually(within: .seconds(10)) { await alice.reestablishedCount == 1 })

            for id in 1...5 { await alice.input(.update(UpdateID(id), .pay(amount: 1))) }
            #expect(await eventually(within: .seconds(10)) {
                let versions = (await alice.latest.version, await bob.latest.version)
                return versions == (5, 5)
            })

            // Bob commits version 6 but his accept never leaves, and he stops listening.
            await bob.setDropNextAccept()
            await listener.close()
            await alice.input(.update(6, .pay(amount: 1)))
            #expect(await eventually(within: .seconds(10)) { await bob.latest.version == 6 })
            #expect(await eventually(within: .seconds(10)) { failedDials.withLock { $0 } >= 2 })
            #expect(await alice.latest.version == 5)
            #expect(await alice.highestSigned == 6)

            // Bob is back on the same address; the link finds him and the channel heals.
            listener = try await bobEndpoint.listen(on: address, acceptPeer: acceptAlice) { bobSessionSink.yield(.connected($0)) }
            #expect(await eventually(within: .seconds(10)) { await alice.reestablishedCount == 2 })
            #expect(await eventually(within: .seconds(10)) { let latest = (await alice.latest, await bob.latest)
                return latest.0 == latest.1 })
            let healed = await alice.latest
            #expect(healed.version == 6 && healed.isFullySigned && healed.state.allocation == Allocation(94, 106))
            #expect(await alice.events.contains { if case .committed(_, updates: [6]) = $0 { true } else { false } })

            await alice.input(.update(7, .pay(amount: 1)))
            #expect(await eventually(within: .seconds(10)) {
                let versions = (await alice.latest.version, await bob.latest.version)
                return versions == (7, 7)
            })

            await link.stop()
            await listener.close()
            aliceLinkSink.finish()
            bobSessionSink.finish()
            await aliceFollower.value
            await bobFollower.value
        }
    }
}
