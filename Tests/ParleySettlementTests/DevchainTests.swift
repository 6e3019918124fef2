import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleySettlement
import ParleyTestSupport
import ParleyTransport
import ParleyWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What only the devchain daemon has: a process to kill, a file to damage, a network to abuse.
@Suite struct DevchainTests {
    /// Clients of `daemon` for alice, bob and mallory on the shared test loop.
    struct Clients {
        let alice: DevchainClient
        let bob: DevchainClient
        let mallory: DevchainClient

        init(_ address: SocketAddress) throws {
            let loop = try TestLoop.get()
            alice = DevchainClient(address: address, identity: Keys.alice, loop: loop)
            bob = DevchainClient(address: address, identity: Keys.bob, loop: loop)
            mallory = DevchainClient(address: address, identity: Keys.mallory, loop: loop)
        }

        func close() async {
            for client in [alice, bob, mallory] { await client.close() }
        }

        /// A scenario whose adapters are these clients.
        func scenario(opening: Allocation = Allocation(100, 50)) throws -> Scenario {
            let clients = self
            let chain = ChainUnderTest(
                makeAdapter: { key in
                    key.publicKey == Keys.alice.publicKey ? clients.alice
                        : key.publicKey == Keys.bob.publicKey ? clients.bob : clients.mallory
                },
                advance: { try await clients.mallory.advance(by: $0) }, domain: .devchainDefault)
            return try Scenario(chain, opening: opening)
        }
    }

    /// Everything a client can observe about the scenario's channel and accounts.
    struct Observed: Equatable {
        var channel: ChannelOnChain?
        var balances: [UInt64]
        var events: [ChainEvent]
        var time: ChainTime

        static func of(_ s: Scenario, events count: Int) async throws -> Observed {
            let events = try await EventStreamTests.collect(s.mallory.events(after: 0), count: count)
            return Observed(
                channel: try await s.onChain(),
                balances: [
                    try await s.alice.balance(of: Keys.alice.publicKey), try await s.bob.balance(of: Keys.bob.publicKey),
                ],
                events: events, time: try await s.mallory.now())
        }
    }

    @Test func killedMidDisputeTheDaemonLosesNothingAcknowledgedAndStreamsContinueWithoutGapOrDuplicate() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let clients = try Clients(first.address)
        defer { Task { await clients.close() } }
        let s = try clients.scenario()
        let stream = s.alice.events(after: 0)

        try await s.mintOpening()
        try await s.deposit(.first, 100)
        try await s.deposit(.second, 50)
        try await s.alice.register(s.signed(s.state(1, (90, 60))))  // window [0, 60)
        try await s.chain.advance(10)
        let before = try await Observed.of(s, events: 4)
        #expect(before.channel?.phase == .disputed)
        #expect(before.channel?.deadline == ChainTime(seconds: 60))

        first.stop(SIGKILL)
        // A read issued while the daemon is down waits for the reconnect.
        let waiting = Task { try await s.bob.channel(s.params.id) }
        let restartClock = ContinuousClock.now
        let second = try DevchainDaemon.start(directory: directory, port: first.address.port)
        let restartTime = ContinuousClock.now - restartClock
        #expect(second.replayed == 5)
        #expect(second.ready["time"] as? Int == 10)
        #expect(try await waiting.value == before.channel)
        let after = try await Observed.of(s, events: 4)
        #expect(after == before)

        // The dispute goes on where it stopped: bob answers inside the window, then it concludes.
        try await s.bob.register(s.signed(s.state(2, (60, 90))))
        try await s.chain.advance(50)
        try await s.mallory.conclude(s.params.id)
        try await s.alice.withdraw(s.params.id, participant: .first)
        try await s.bob.withdraw(s.params.id, participant: .second)
        let seen = try await EventStreamTests.collect(stream, count: 8)
        #expect(seen.map(\.sequence) == Array(1...8))
        #expect(Array(seen.prefix(4)) == before.events)
        #expect(try await s.bob.balance(of: Keys.bob.publicKey) == 90)
        print("devchain restart after SIGKILL: listening again \(restartTime) after exec")
    }

    @Test func transactionInFlightWhenTheDaemonDiesFailsWithTransportAndStateCanBeReRead() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let client = DevchainClient(address: first.address, identity: Keys.alice, loop: try TestLoop.get())
        defer { Task { await client.close() } }
        try await client.mint(5, to: Keys.alice.publicKey)
        // Frozen, the daemon reads nothing and answers nothing; then it dies with the request unanswered.
        try first.freeze()
        let inFlight = Task { try await client.mint(7, to: Keys.alice.publicKey) }
        try await Task.sleep(for: .milliseconds(100))
        first.stop(SIGKILL)
        let result = await inFlight.result
        guard case let .failure(error) = result, case let .transport(why) = error as? SettlementError else {
            Issue.record("expected .transport, got \(result)")
            return
        }
        #expect(why.contains("may or may not have been applied"))
        // The caller re-reads: the daemon never applied it.
        let second = try DevchainDaemon.start(directory: directory, port: first.address.port)
        #expect(second.replayed == 1)
        #expect(try await client.balance(of: Keys.alice.publicKey) == 5)
    }

    /// Tests start daemons with `--stop-on-eof` and hold the pipe: if the test process dies
    /// (a crash, a CI timeout's SIGKILL) the kernel closes it and the daemon stops instead of
    /// living on as an orphan holding a port and a data directory.
    @Test func aDaemonStopsCleanlyWhenItsStandardInputEnds() throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory)
        #expect(daemon.process.isRunning)
        daemon.cutLifeline()
        let deadline = Date(timeIntervalSinceNow: 20)
        while daemon.process.isRunning, Date() < deadline { usleep(10_000) }
        try #require(!daemon.process.isRunning, "the daemon outlived its standard input")
        #expect(daemon.process.termination == .exited(0))
        #expect(daemon.stderr.waitForEnd(before: Date(timeIntervalSinceNow: 5)))
        #expect(daemon.stderr.text.contains("standard input closed"), "stderr: \(daemon.stderr.text)")
    }

    @Test func tornTailIsCutOffAndTheDaemonStarts() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let clients = try Clients(first.address)
        try await clients.alice.mint(5, to: Keys.alice.publicKey)
        try await clients.alice.mint(7, to: Keys.alice.publicKey)
        await clients.close()
        first.stop(SIGTERM)
        #expect(first.process.termination == .exited(0))

        let log = directory + "/ledger.log"
        let goodSize = try #require(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int)
        // A record header claiming 100 bytes, and only 10 of them: what a crash mid-append leaves.
        let handle = try #require(FileHandle(forWritingAtPath: log))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0, 0, 0, 100, 1, 2, 3, 4] + [UInt8](repeating: 0xAB, count: 10)))
        try handle.close()

        let second = try DevchainDaemon.start(directory: directory)
        #expect(second.replayed == 2)
        let restarted = try Clients(second.address)
        defer { Task { await restarted.close() } }
        #expect(try await restarted.alice.balance(of: Keys.alice.publicKey) == 12)
        #expect(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int == goodSize)
        second.stop(SIGTERM)
        #expect(second.stderr.text.contains("torn last record of 18 bytes"))
    }

    @Test func corruptionBeforeTheLastRecordIsRefusedWithAClearMessage() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let clients = try Clients(first.address)
        for amount in 1...3 as ClosedRange<UInt64> { try await clients.alice.mint(amount, to: Keys.alice.publicKey) }
        await clients.close()
        first.stop(SIGKILL)

        // Flip one byte inside the first record's body (after the 12-byte file header and 8-byte record header).
        let log = directory + "/ledger.log"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
        bytes[12 + 8 + 20] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: log))

        let run = try await DevchainDaemon.run(["devchain", "--listen", "127.0.0.1:0", "--data", directory, "--manual-time"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("ledger.log is corrupt at byte 12 (checksum mismatch)"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    @Test func secondDaemonOnTheSameDataDirectoryIsRefused() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let run = try await DevchainDaemon.run(["devchain", "--listen", "127.0.0.1:0", "--data", directory, "--manual-time"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("is in use by another devchain (pid \(first.process.processIdentifier))"), "\(run.stderr)")
        #expect(first.process.isRunning)
    }

    @Test func garbageBytesAndHostileClientsDoNotDisturbAnotherClient() async throws {
        let fixture = try DevchainFixture.start()
        let address = fixture.daemon.address
        let s = try Scenario(
            ChainUnderTest(
                makeAdapter: { fixture.client(for: $0) },
                advance: { try await fixture.client(for: Keys.mallory).advance(by: $0) }, domain: .devchainDefault,
                resources: fixture))
        let stream = s.bob.events(after: 0)
        try await s.mintOpening()
        try await s.deposit(.first, 100)

        let loop = try TestLoop.get()
        // Raw garbage instead of a handshake.
        let raw = try await loop.dial(to: address, retry: RetryPolicy(maxAttempts: 1))
        try await raw.send([UInt8](repeating: 0xFF, count: 4096))
        // A proper session that then sends an undecodable request, an oversize count, and an unknown op.
        let hostile = SessionEndpoint(identity: SigningKey(), loop: loop)
        let session = try await hostile.connect(to: address, expecting: Devchain.wellKnownKey)
        try await session.send([0, 0, 0, 0, 0, 0, 0, 1, 99])
        let reason = await session.waitUntilClosed()
        #expect("\(reason)".contains("undecodable request"), "\(reason)")
        // A session that subscribes but never reads its events.
        let lazy = try await hostile.connect(to: address, expecting: Devchain.wellKnownKey)
        try await lazy.send(DevchainRequest(id: 1, operation: .subscribe(after: 0)).wireBytes)
        try await lazy.send(DevchainRequest(id: 2, operation: .subscribe(after: .max)).wireBytes)
        try await lazy.send(DevchainRequest(id: 3, operation: .advance(seconds: .max)).wireBytes)

        try await s.deposit(.second, 50)
        try await s.alice.register(s.signed(s.state(1)))
        #expect(try await EventStreamTests.collect(stream, count: 4).map(\.sequence) == [1, 2, 3, 4])
        #expect(try await s.onChain()?.registeredVersion == 1)
        #expect(try await s.alice.now() == ChainTime(seconds: .max))  // saturated, not trapped
        raw.close()
        lazy.close()
    }

    @Test func blockTimeMovesTheClockByItselfAndRefusesAdvance() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory, timeArguments: ["--block-time", "100"])
        #expect(daemon.ready["manualTime"] as? Bool == false)
        let client = DevchainClient(address: daemon.address, identity: Keys.alice, loop: try TestLoop.get())
        defer { Task { await client.close() } }
        let start = try await client.now()
        try await Task.sleep(for: .milliseconds(1300))
        let later = try await client.now()
        #expect(later.seconds >= start.seconds + 1)
        await #expect(throws: DevchainError.refused(.clockNotManual(blockMilliseconds: 100))) {
            try await client.advance(by: 5)
        }
        // Time a client was told survives a crash: the clock never goes backwards.
        daemon.stop(SIGKILL)
        let again = try DevchainDaemon.start(directory: directory, timeArguments: ["--block-time", "100"])
        #expect((again.ready["time"] as? Int).map(UInt64.init) ?? 0 >= later.seconds)
    }

    @Test func infoReportsTheChallengeDefaultAndTimeMode() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory, extra: ["--challenge-default", "120", "--chain-id", "77"])
        let client = try await DevchainClient.connect(to: "devchain://\(daemon.address)", identity: Keys.alice)
        try await client.advance(by: 30)
        let info = try await client.info()
        #expect(
            info == DevchainInfo(
                challengeDefault: 120, manualTime: true, lastSequence: 0, time: ChainTime(seconds: 30),
                domain: try SettlementDomain(chainID: 77)))
        #expect(try await client.domain() == SettlementDomain(chainID: 77))
        await client.close()
    }

    @Test func daemonWithItsOwnIdentityIsReachedOnlyThroughItsPinnedKey() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = SigningKey()
        try KeyFile.write(key, to: directory + "/chain.key")
        let daemon = try DevchainDaemon.start(directory: directory + "/data", extra: ["--identity", directory + "/chain.key"])
        let loop = try TestLoop.get()
        let pinned = try await DevchainClient.connect(
            to: "devchain://\(key.publicKey.humanForm)@\(daemon.address)", identity: Keys.alice, loop: loop)
        #expect(try await pinned.info().manualTime)
        await pinned.close()
        await #expect(throws: DevchainError.self) {
            try await DevchainClient.connect(
                to: "devchain://\(daemon.address)", identity: Keys.alice, loop: loop, connectTimeout: .milliseconds(500))
        }
        #expect(throws: DevchainError.self) { try Devchain.endpoint("devchain://pk1nope@127.0.0.1:1") }
    }

    @Test func unreachableDaemonFailsWithATransportError() async throws {
        // A port nothing listens on: bind one, note it, close it.
        let loop = try TestLoop.get()
        let endpoint = SessionEndpoint(identity: SigningKey(), loop: loop)
        let listener = try await endpoint.listen(on: .loopbackIPv4(port: 0), acceptPeer: { _ in false }, onSession: { _ in })
        let address = listener.localAddress
        await listener.close()
        let client = DevchainClient(address: address, identity: Keys.alice, loop: loop, connectTimeout: .milliseconds(300))
        defer { Task { await client.close() } }
        let error = await settlementError { () async throws(SettlementError) in _ = try await client.now() }
        guard case let .transport(why) = error else {
            Issue.record("expected .transport, got \(String(describing: error))")
            return
        }
        #expect(why.contains("no devchain answered"))
    }

    /// Quotable numbers: submit round trip (fsync included) and replay time. Printed, loosely checked.
    @Test func submitRoundTripAndReplayAreQuick() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let client = DevchainClient(address: first.address, identity: Keys.alice, loop: try TestLoop.get())
        // PARLEY_DEVCHAIN_BENCH_COUNT=10000 for a bigger replay.
        let count = ProcessInfo.processInfo.environment["PARLEY_DEVCHAIN_BENCH_COUNT"].flatMap { Int($0) }.map { max(100, $0) } ?? 1000
        var samples: [Duration] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            try await client.mint(1, to: Keys.alice.publicKey)
            samples.append(.now - start)
        }
        await client.close()
        samples.sort()
        first.stop(SIGKILL)
        let restart = ContinuousClock.now
        let second = try DevchainDaemon.start(directory: directory)
        let replay = ContinuousClock.now - restart
        #expect(second.replayed == count)
        print("devchain: \(count) mints, submit round trip p50 \(samples[count / 2]) p99 \(samples[count * 99 / 100]); restart replaying \(count) transactions listening after \(replay)")
        #expect(replay < .seconds(10))
    }
}

@Suite struct DevchainCodecTests {
    @Test func channelSnapshotsRoundTrip() async throws {
        let chain = LocalChain(apps: [CounterApp()])
        let s = try await Scenario.funded(
            ChainUnderTest(
                makeAdapter: { chain.adapter(for: $0.publicKey) }, advance: { chain.advance(by: $0) }, domain: chain.domain))
        try await s.alice.register(s.signed(s.state(3, (70, 80))))
        chain.advance(by: 60)
        try await s.alice.conclude(s.params.id)
        try await s.bob.withdraw(s.params.id, participant: .second)
        let snapshot = try #require(chain.channel(s.params.id))
        #expect(try ChannelOnChain(wireBytes: snapshot.wireBytes) == snapshot)
    }

    @Test func requestsAndMessagesRoundTripAndGarbageIsATypedError() throws {
        let requests: [DevchainRequest.Operation] = [
            .submit(.mint(account: Keys.bob.publicKey, amount: 9)), .now, .balance(Keys.alice.publicKey),
            .advance(seconds: 60), .info, .subscribe(after: 7), .unsubscribe(subscription: 3),
        ]
        for (index, operation) in requests.enumerated() {
            let request = DevchainRequest(id: UInt64(index), operation: operation)
            #expect(try DevchainRequest(wireBytes: request.wireBytes) == request)
        }
        let messages: [DevchainServerMessage] = [
            .response(id: 1, .ok([1, 2, 3])), .response(id: 2, .refused(.windowClosed(deadline: .zero, now: .zero))),
            .response(id: 3, .failed(.clockNotManual(blockMilliseconds: 1000))),
        ]
        for message in messages { #expect(try DevchainServerMessage(wireBytes: message.wireBytes) == message) }
        #expect(throws: WireError.unknownTag(field: "request operation", tag: 99)) {
            try DevchainRequest(wireBytes: [0, 0, 0, 0, 0, 0, 0, 1, 99])
        }
        // An events message claiming more events than the limit is refused before allocating.
        #expect(throws: WireError.lengthExceedsLimit(field: "event count", length: 1 << 30, limit: DevchainLimits.maxEventsPerMessage)) {
            try DevchainServerMessage(wireBytes: [2, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0, 0, 0])
        }
    }
}
