import ParleyCrypto
import Testing

@testable import ParleyTransport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether 127.0.0.2 can call the listener (Linux routes all of 127.0.0.0/8 to loopback).
private let secondSourceHost = "127.0.0.2"
private let hasSecondSource = Loopback.canConnect(from: secondSourceHost)

/// Dials `server`, sends a valid hello and reports whether the listener answered it (true) or
/// closed the connection without a word (false). Closes the connection either way.
private func helloIsAnswered(on loop: EventLoop, by server: ListeningPeer) async throws -> Bool {
    let connection = try await loop.dial(to: server.address, timeout: .seconds(20))
    defer { connection.close(reason: "probe done") }
    let inbox = ByteInbox()
    inbox.attach(to: connection)
    let initiator = HandshakeInitiator(identity: SigningKey(), expectedPeer: server.key)
    try await connection.send(Handshake.frame(initiator.start()))
    do {
        _ = try await withDeadline(.seconds(20)) { try await inbox.read(exactly: 1) }
        return true
    } catch is ByteInbox.Closed {
        return false
    }
}

/// How many of `failures` are `reason`.
private func count(_ reason: SessionCloseReason, in failures: Recorder<SessionCloseReason>) -> Int {
    failures.all.filter { $0 == reason }.count
}

/// The listener's bounds on handshake work it does before it knows who calls: handshakes in
/// progress per source address, and token buckets on the key exchange and signature.
@Suite("Handshake bounds", .timeLimit(.minutes(2)))
struct HandshakeBoundsTests {
    // MARK: - Pure parts: buckets, sources, the admission tables

    @Test func tokenBucketGivesTheBurstThenRefillsAtTheRate() {
        let rate = HandshakeRate(perSecond: 4, burst: 2)
        let start = ContinuousClock.now
        var bucket = TokenBucket(rate, at: start)
        #expect(bucket.tokens == 2 && bucket.isFull(rate, at: start))
        bucket.take()
        bucket.take()
        bucket.refill(rate, at: start)
        #expect(bucket.tokens == 0)
        #expect(bucket.tokens(rate, at: start + .milliseconds(125)) == 0.5)
        bucket.refill(rate, at: start + .milliseconds(250))
        #expect(bucket.tokens == 1 && !bucket.isFull(rate, at: start + .milliseconds(250)))
        // Never above the burst, however long it waits; a clock that goes back adds nothing.
        #expect(bucket.tokens(rate, at: start + .seconds(3600)) == 2)
        bucket.refill(rate, at: start)
        #expect(bucket.tokens == 1)
    }

    @Test func ratesAreClampedToUsableValues() {
        let zero = HandshakeRate(perSecond: 0, burst: 0)
        #expect(zero.perSecond == HandshakeRate.minimumPerSecond && zero.burst == 1)
        #expect(HandshakeRate(perSecond: .nan, burst: 3).perSecond == HandshakeRate.minimumPerSecond)
        #expect(HandshakeRate.unlimited.isUnlimited && !HandshakeRateLimits.defaultPerAddress.isUnlimited)
    }

    @Test func sourceIgnoresThePortAndCountsAnIPv6NetworkAsOneCaller() throws {
        let a = HandshakeSource(try SocketAddress("10.1.2.3:1000"))
        #expect(a == HandshakeSource(try SocketAddress("10.1.2.3:2000")))
        #expect(a != HandshakeSource(try SocketAddress("10.1.2.4:1000")))
        #expect(a.description == "10.1.2.3")
        // An IPv4 caller on a dual-stack listener arrives IPv4-mapped: the same caller.
        #expect(a == HandshakeSource(try SocketAddress("[::ffff:10.1.2.3]:3000")))
        let network = HandshakeSource(try SocketAddress("[2001:db8:1:2::1]:1000"))
        #expect(network == HandshakeSource(try SocketAddress("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1")))
        #expect(network != HandshakeSource(try SocketAddress("[2001:db8:1:3::1]:1000")))
        #expect(network.description == "2001:db8:1:2::/64")
    }

    @Test func pendingCountsArePerSourceAndFinishedSourcesAreForgotten() throws {
        let admission = HandshakeAdmission(config: SessionConfig(maxPendingHandshakesPerAddress: 2))
        let a = HandshakeSource(try SocketAddress("10.0.0.1:1"))
        let b = HandshakeSource(try SocketAddress("10.0.0.2:1"))
        #expect(admission.start(from: a) == nil)
        #expect(admission.start(from: a) == nil)
        #expect(admission.start(from: a) == .tooManyHandshakesFromAddress)
        #expect(admission.start(from: b) == nil)
        admission.finish(from: a)
        #expect(admission.start(from: a) == nil)
        for _ in 0..<2 { admission.finish(from: a) }
        admission.finish(from: b)
        #expect(admission.sourcesInHandshake == 0)
        admission.finish(from: b)  // an extra finish does not go negative
        #expect(admission.start(from: b) == nil && admission.start(from: b) == nil)
        #expect(admission.start(from: b) == .tooManyHandshakesFromAddress)
    }

    @Test func anEmptyBucketRefusesAndNeitherBucketIsCharged() throws {
        let clock = ManualClock()
        // The address buckets refill at the slowest rate allowed: a token taken from one shows.
        let limits = HandshakeRateLimits(
            perAddress: HandshakeRate(perSecond: 0, burst: 2), total: HandshakeRate(perSecond: 1, burst: 3))
        let admission = HandshakeAdmission(config: SessionConfig(handshakeRate: limits), now: { clock.now() })
        let a = HandshakeSource(try SocketAddress("10.0.0.1:1"))
        let b = HandshakeSource(try SocketAddress("10.0.0.2:1"))
        #expect(admission.admitKeyExchange(from: a) == nil)
        #expect(admission.admitKeyExchange(from: a) == nil)
        #expect(admission.admitKeyExchange(from: a) == .handshakeRateLimited(.address))
        // a's refusal took nothing from the total: b still gets the last token.
        #expect(admission.admitKeyExchange(from: b) == nil)
        #expect(admission.admitKeyExchange(from: b) == .handshakeRateLimited(.total))
        // b's refusal took nothing from b's bucket: it still holds one token for the next second.
        clock.advance(by: .seconds(1))
        #expect(admission.admitKeyExchange(from: b) == nil)
        clock.advance(by: .seconds(1))
        #expect(admission.admitKeyExchange(from: b) == .handshakeRateLimited(.address))
    }

    @Test func theBucketTableStaysWithinItsCap() throws {
        let clock = ManualClock()
        let limits = HandshakeRateLimits(perAddress: HandshakeRate(perSecond: 10, burst: 2), total: .unlimited)
        let admission = HandshakeAdmission(
            config: SessionConfig(handshakeRate: limits), maxTrackedSources: 4, now: { clock.now() })
        let sources = try (1...50).map { HandshakeSource(try SocketAddress(host: "10.0.1.\($0)", port: 1)) }
        // Fifty new sources at one instant: every one is admitted, the table never passes 4.
        for source in sources {
            #expect(admission.admitKeyExchange(from: source) == nil)
            #expect(admission.trackedSources <= 4)
        }
        // The newest source keeps its bucket: one token left, then refused.
        let newest = sources[sources.count - 1]
        #expect(admission.admitKeyExchange(from: newest) == nil)
        #expect(admission.admitKeyExchange(from: newest) == .handshakeRateLimited(.address))
        // Once the buckets have refilled, the next new source sweeps them all out.
        clock.advance(by: .seconds(1))
        #expect(admission.admitKeyExchange(from: HandshakeSource(try SocketAddress("10.0.2.1:1"))) == nil)
        #expect(admission.trackedSources == 1)
    }

    @Test func unlimitedRatesKeepNoBuckets() throws {
        let admission = HandshakeAdmission(config: SessionConfig(handshakeRate: .unlimited))
        let source = HandshakeSource(try SocketAddress("10.0.0.1:1"))
        for _ in 0..<1_000 { #expect(admission.admitKeyExchange(from: source) == nil) }
        #expect(admission.trackedSources == 0)
    }

    @Test func checkHelloRunsTheFreeChecksAndChangesNothing() throws {
        var responder = HandshakeResponder(identity: SigningKey(), acceptPeer: { _ in true })
        #expect(throws: HandshakeError.badMagic) { try responder.checkHello(Array("GET / HTTP/1.1".utf8)) }
        let stranger = HandshakeInitiator(identity: SigningKey(), expectedPeer: SigningKey().publicKey, versions: [2])
        #expect(throws: HandshakeError.noCommonVersion(ours: [1], theirs: [2])) { try responder.checkHello(stranger.start()) }
        let hello = HandshakeInitiator(identity: SigningKey(), expectedPeer: SigningKey().publicKey).start()
        try responder.checkHello(hello)
        try responder.checkHello(hello)
        #expect(try responder.receiveHello(hello).count == HandshakeReply.byteCount)
    }

    // MARK: - Over loopback sockets

    /// Without the per-address bound the attacker would hold every pending slot and the honest
    /// dialer would be refused with `.tooManyPendingHandshakes`.
    @Test(.enabled(if: hasSecondSource, "needs 127.0.0.2 as a source address (Linux routes 127/8 to loopback)"))
    func oneAddressCannotTakeEveryPendingSlotAndAnotherAddressStillGetsIn() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let config = SessionConfig(
                    connectTimeout: .seconds(20), handshakeTimeout: .seconds(60),
                    maxPendingHandshakes: 8, maxPendingHandshakesPerAddress: 3)
                let server = try await ListeningPeer.start(on: serverLoop, config: config)
                let endpoint = server.endpoint
                let perAddress = config.maxPendingHandshakesPerAddress
                var attacker: [Int32] = []
                defer { for descriptor in attacker { close(descriptor) } }
                // From 127.0.0.2: as many connections as the listener has slots, each sending
                // half of a length prefix and then nothing.
                for index in 0..<config.maxPendingHandshakes {
                    let descriptor = try #require(Loopback.rawConnect(to: server.address, from: secondSourceHost))
                    attacker.append(descriptor)
                    #expect(Loopback.rawSend([0, 0], on: descriptor))
                    if index == perAddress - 1 {
                        // The first ones are in their handshake before the rest arrive.
                        #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == perAddress })
                    }
                }
                let refused = config.maxPendingHandshakes - perAddress
                let failures = server.failures
                #expect(await eventually(within: .seconds(10)) { failures.all.count == refused })
                #expect(failures.all == Array(repeating: .tooManyHandshakesFromAddress, count: refused))
                #expect(endpoint.refusedHandshakeCount == refused)
                #expect(endpoint.pendingHandshakeCount == perAddress)
                // The refused sockets see the close; the admitted ones are still waiting.
                let held = attacker.prefix(perAddress)
                let closed = attacker.dropFirst(perAddress)
                #expect(await eventually(within: .seconds(10)) {
                    closed.allSatisfy { Loopback.rawReceive(on: $0) == .closed }
                })
                #expect(held.allSatisfy { Loopback.rawReceive(on: $0) == .nothingYet })

                // An honest dialer from 127.0.0.1 gets a session meanwhile.
                let honest = try await SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                    .connect(to: server.address, expecting: server.key)
                let accepted = try await server.session()
                try await honest.send([1])
                #expect(try await receiveMessages(1, from: accepted) == [[1]])

                // When the attacker's handshakes end, its address gets its slots back.
                for descriptor in attacker { close(descriptor) }
                attacker = []
                #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 0 })
                let again = try #require(Loopback.rawConnect(to: server.address, from: secondSourceHost))
                attacker.append(again)
                #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 1 })
                #expect(endpoint.refusedHandshakeCount == refused)
                honest.close(reason: "done")
                _ = await accepted.waitUntilClosed()
            }
        }
    }

    /// The same bound seen from one address only: the extra connections are refused for
    /// their address while the listener as a whole is far below its limit.
    @Test func connectionsBeyondThePerAddressLimitAreRefusedBelowTheTotalLimit() async throws {
        try await withEventLoop { loop in
            let config = SessionConfig(
                connectTimeout: .seconds(20), handshakeTimeout: .seconds(60),
                maxPendingHandshakes: 16, maxPendingHandshakesPerAddress: 3)
            let server = try await ListeningPeer.start(on: loop, config: config)
            let endpoint = server.endpoint
            var idle: [TCPConnection] = []
            for _ in 0..<3 { idle.append(try await loop.dial(to: server.address, timeout: .seconds(20))) }
            #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 3 })
            for _ in 0..<2 {
                let extra = try await loop.dial(to: server.address, timeout: .seconds(20))
                let inbox = ByteInbox()
                inbox.attach(to: extra)
                #expect(try await withDeadline(.seconds(10)) { await inbox.waitForClose() } == .peerClosed)
            }
            #expect(server.failures.all == [.tooManyHandshakesFromAddress, .tooManyHandshakesFromAddress])
            #expect(endpoint.refusedHandshakeCount == 2 && endpoint.failedHandshakeCount == 2)
            #expect(endpoint.pendingHandshakeCount == 3)

            for connection in idle { connection.close() }
            #expect(await eventually(within: .seconds(10)) { endpoint.pendingHandshakeCount == 0 })
            let session = try await SessionEndpoint(identity: SigningKey(), loop: loop, config: config)
                .connect(to: server.address, expecting: server.key)
            let accepted = try await server.session()
            session.close(reason: "done")
            _ = await accepted.waitUntilClosed()
        }
    }

    /// Hellos beyond the address's burst get no reply at all (the reply carries the
    /// listener's signature, so none was made) until the bucket refills.
    @Test func hellosBeyondTheAddressBurstAreRefusedBeforeAnyCryptoUntilTheBucketRefills() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let clock = ManualClock()
                let config = SessionConfig(
                    connectTimeout: .seconds(20), handshakeTimeout: .seconds(60), maxPendingHandshakesPerAddress: 64,
                    handshakeRate: HandshakeRateLimits(perAddress: HandshakeRate(perSecond: 1, burst: 3), total: .unlimited))
                let server = try await ListeningPeer.start(on: serverLoop, config: config, now: { clock.now() })
                let endpoint = server.endpoint
                var answered: [Bool] = []
                for _ in 0..<8 { answered.append(try await helloIsAnswered(on: clientLoop, by: server)) }
                #expect(answered == [true, true, true, false, false, false, false, false])
                let failures = server.failures
                #expect(await eventually(within: .seconds(10)) { count(.handshakeRateLimited(.address), in: failures) == 5 })
                #expect(endpoint.refusedHandshakeCount == 5)

                // An honest dialer from the same address is refused too while the bucket is empty...
                let dialer = SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                await #expect(throws: SessionError.self) {
                    _ = try await dialer.connect(to: server.address, expecting: server.key)
                }
                #expect(await eventually(within: .seconds(10)) { count(.handshakeRateLimited(.address), in: failures) == 6 })
                // ...and gets in once it has refilled by one token: exactly one.
                clock.advance(by: .seconds(1))
                let session = try await dialer.connect(to: server.address, expecting: server.key)
                let accepted = try await server.session()
                try await session.send([2])
                #expect(try await receiveMessages(1, from: accepted) == [[2]])
                #expect(try await helloIsAnswered(on: clientLoop, by: server) == false)
                #expect(await eventually(within: .seconds(10)) { endpoint.refusedHandshakeCount == 7 })
                session.close(reason: "done")
                _ = await accepted.waitUntilClosed()
            }
        }
    }

    /// Only hellos that would reach the key exchange are charged: garbage costs no token.
    @Test func hellosThatFailTheFreeChecksCostNoTokens() async throws {
        try await withEventLoop { loop in
            let clock = ManualClock()
            let config = SessionConfig(
                connectTimeout: .seconds(20), handshakeTimeout: .seconds(60), maxPendingHandshakesPerAddress: 64,
                handshakeRate: HandshakeRateLimits(perAddress: HandshakeRate(perSecond: 1, burst: 1), total: .unlimited))
            let server = try await ListeningPeer.start(on: loop, config: config, now: { clock.now() })
            for _ in 0..<3 {
                let connection = try await loop.dial(to: server.address, timeout: .seconds(20))
                let inbox = ByteInbox()
                inbox.attach(to: connection)
                try await connection.send(Handshake.frame(Array("GET / HTTP/1.1".utf8)))
                _ = try await withDeadline(.seconds(10)) { await inbox.waitForClose() }
            }
            let failures = server.failures
            #expect(await eventually(within: .seconds(10)) { count(.handshakeFailed(.badMagic), in: failures) == 3 })
            #expect(try await helloIsAnswered(on: loop, by: server))
            #expect(try await helloIsAnswered(on: loop, by: server) == false)
            #expect(await eventually(within: .seconds(10)) { server.endpoint.refusedHandshakeCount == 1 })
        }
    }

    @Test func theTotalBucketBoundsEveryAddressTogether() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let clock = ManualClock()
                let config = SessionConfig(
                    connectTimeout: .seconds(20), handshakeTimeout: .seconds(60), maxPendingHandshakesPerAddress: 64,
                    handshakeRate: HandshakeRateLimits(perAddress: .unlimited, total: HandshakeRate(perSecond: 2, burst: 2)))
                let server = try await ListeningPeer.start(on: serverLoop, config: config, now: { clock.now() })
                var answered: [Bool] = []
                for _ in 0..<4 { answered.append(try await helloIsAnswered(on: clientLoop, by: server)) }
                #expect(answered == [true, true, false, false])
                let failures = server.failures
                #expect(await eventually(within: .seconds(10)) { count(.handshakeRateLimited(.total), in: failures) == 2 })
                clock.advance(by: .milliseconds(500))
                let session = try await SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                    .connect(to: server.address, expecting: server.key)
                let accepted = try await server.session()
                #expect(server.endpoint.refusedHandshakeCount == 2)
                session.close(reason: "done")
                _ = await accepted.waitUntilClosed()
            }
        }
    }

    /// The same with the real clock: probes until the bucket refuses one, then an honest
    /// dialer retries until the bucket has refilled and gets a session.
    @Test func withTheRealClockTheBucketRefillsAndAnHonestPeerConnectsAgain() async throws {
        try await withEventLoop { serverLoop in
            try await withEventLoop { clientLoop in
                let config = SessionConfig(
                    connectTimeout: .seconds(20), handshakeTimeout: .seconds(60), maxPendingHandshakesPerAddress: 64,
                    handshakeRate: HandshakeRateLimits(perAddress: HandshakeRate(perSecond: 1, burst: 2), total: .unlimited))
                let server = try await ListeningPeer.start(on: serverLoop, config: config)
                var probes = 0
                var refused = false
                while !refused, probes < 200 {
                    let answered = try await helloIsAnswered(on: clientLoop, by: server)
                    refused = !answered
                    probes += 1
                }
                #expect(refused, "no hello was refused in \(probes) tries at 1 per second")
                let failures = server.failures
                #expect(await eventually(within: .seconds(10)) { count(.handshakeRateLimited(.address), in: failures) >= 1 })

                let dialer = SessionEndpoint(identity: SigningKey(), loop: clientLoop, config: config)
                let (address, key) = (server.address, server.key)
                let session = try await withDeadline(.seconds(60)) {
                    while true {
                        do {
                            return try await dialer.connect(to: address, expecting: key)
                        } catch is SessionError {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
                let accepted = try await server.session()
                try await session.send([3])
                #expect(try await receiveMessages(1, from: accepted) == [[3]])
                session.close(reason: "done")
                _ = await accepted.waitUntilClosed()
            }
        }
    }
}
