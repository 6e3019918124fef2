import Foundation
import ParleyChannel
import ParleyGames
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
    /// Clients of `daemon` for alice, bob and mallory on the shared test loop, pinning its key.
    struct Clients {
        let alice: DevchainClient
        let bob: DevchainClient
        let mallory: DevchainClient

        init(_ daemon: DevchainDaemon) throws {
            let loop = try TestLoop.get()
            alice = DevchainClient(address: daemon.address, identity: Keys.alice, loop: loop, expecting: daemon.key)
            bob = DevchainClient(address: daemon.address, identity: Keys.bob, loop: loop, expecting: daemon.key)
            mallory = DevchainClient(address: daemon.address, identity: Keys.mallory, loop: loop, expecting: daemon.key)
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
        var balances: [Amount]
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
        let clients = try Clients(first)
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
        let client = DevchainClient(
            address: first.address, identity: Keys.alice, loop: try TestLoop.get(), expecting: first.key,
            requestTimeout: .seconds(60))
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
        let clients = try Clients(first)
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
        let restarted = try Clients(second)
        defer { Task { await restarted.close() } }
        #expect(try await restarted.alice.balance(of: Keys.alice.publicKey) == 12)
        #expect(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int == goodSize)
        second.stop(SIGTERM)
        #expect(second.stderr.text.contains("torn last record of 18 bytes"))
    }

    @Test func aLedgerOfTheOlderFormatIsRefusedByName() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A version-1 ledger (64-bit amounts): its magic, version 1, then a record that would be
        // misread if anything tried.
        let old = Array("PARLEYDC".utf8) + [0, 0, 0, 1] + [0, 0, 0, 4, 1, 2, 3, 4, 9, 9, 9, 9]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(old).write(to: URL(fileURLWithPath: directory + "/ledger.log"))

        let run = try await DevchainDaemon.run(["devchain", "--listen", "127.0.0.1:0", "--data", directory, "--manual-time"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("ledger format 1 was written by an older Parley (format 1: 64-bit amounts"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)

        // Version 2: the records of the rules before a final registration paid both seats.
        let two = Array("PARLEYDC".utf8) + [0, 0, 0, 2]
        try Data(two).write(to: URL(fileURLWithPath: directory + "/ledger.log"))
        let second = try await DevchainDaemon.run(["devchain", "--listen", "127.0.0.1:0", "--data", directory, "--manual-time"])
        #expect(second.status == 1)
        #expect(second.stderr.contains("ledger format 2 was written by an older Parley"), "\(second.stderr)")
    }

    @Test func corruptionBeforeTheLastRecordIsRefusedWithAClearMessage() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DevchainDaemon.start(directory: directory)
        let clients = try Clients(first)
        for amount in [1, 2, 3] as [Amount] { try await clients.alice.mint(amount, to: Keys.alice.publicKey) }
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
        // A chain others share: its own identity, an open faucet (the scenario mints from the
        // participants' keys), and a clock only its operator moves.
        let operatorKey = Keys.key(9)
        let fixture = try DevchainFixture.start(identity: operatorKey, access: ["--allow-faucet"])
        let address = fixture.daemon.address
        let s = try Scenario(
            ChainUnderTest(
                makeAdapter: { fixture.client(for: $0) },
                advance: { try await fixture.client(for: operatorKey).advance(by: $0) }, domain: .devchainDefault,
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
        let session = try await hostile.connect(to: address, expecting: fixture.daemon.key)
        try await session.send([0, 0, 0, 0, 0, 0, 0, 1, 99])
        let reason = await session.waitUntilClosed()
        #expect("\(reason)".contains("undecodable request"), "\(reason)")
        // A session that subscribes but never reads its events, and tries to end every
        // dispute at once by moving the clock to the end of time.
        let lazy = try await hostile.connect(to: address, expecting: fixture.daemon.key)
        try await lazy.send(DevchainRequest(id: 1, operation: .subscribe(after: 0)).wireBytes)
        try await lazy.send(DevchainRequest(id: 2, operation: .subscribe(after: .max)).wireBytes)
        try await lazy.send(DevchainRequest(id: 3, operation: .advance(seconds: .max)).wireBytes)
        // The same time travel from a session that reads its answer: refused.
        let traveller = try await hostile.connect(to: address, expecting: fixture.daemon.key)
        #expect(try await Self.answer(to: .advance(seconds: .max), on: traveller) == .failed(.timeTravelNotAllowed))

        try await s.deposit(.second, 50)
        try await s.alice.register(s.signed(s.state(1)))
        #expect(try await EventStreamTests.collect(stream, count: 4).map(\.sequence) == [1, 2, 3, 4])
        #expect(try await s.onChain()?.registeredVersion == 1)
        #expect(try await s.onChain()?.deadline == ChainTime(seconds: Scenario.challenge))
        #expect(try await s.alice.now() == .zero)  // neither hostile advance moved the clock
        // The operator may move it that far: saturated, not trapped.
        try await s.chain.advance(.max)
        #expect(try await s.alice.now() == ChainTime(seconds: .max))
        raw.close()
        lazy.close()
        traveller.close()
    }

    /// Sends `operation` on a raw session, as any program speaking the protocol could, and
    /// returns the daemon's answer (nil if the session ended first).
    static func answer(
        to operation: DevchainRequest.Operation, on session: Session, id: UInt64 = 1
    ) async throws -> DevchainResult? {
        try await session.send(DevchainRequest(id: id, operation: operation).wireBytes)
        for await event in session.events {
            guard case let .message(bytes) = event else { continue }
            if case let .response(answered, result) = try DevchainServerMessage(wireBytes: bytes), answered == id {
                return result
            }
        }
        return nil
    }

    @Test(arguments: [[], ["--allow-faucet"], ["--allow-time-travel"], ["--allow-faucet", "--allow-time-travel"]])
    func onAChainWithItsOwnIdentityOnlyTheOperatorMintsAndMovesTimeUnlessAFlagSaysSo(access: [String]) async throws {
        let faucetOpen = access.contains("--allow-faucet")
        let clockOpen = access.contains("--allow-time-travel")
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let operatorKey = SigningKey()
        let daemon = try DevchainDaemon.start(directory: directory, identity: operatorKey, access: access)
        #expect(daemon.key == operatorKey.publicKey)
        #expect(daemon.ready["faucet"] as? String == (faucetOpen ? "anyone" : "operator"))
        #expect(daemon.ready["timeTravel"] as? String == (clockOpen ? "anyone" : "operator"))
        let loop = try TestLoop.get()
        let operatorClient = try await DevchainClient.connect(to: daemon.url, identity: operatorKey, loop: loop)
        let mallory = try await DevchainClient.connect(to: daemon.url, identity: Keys.mallory, loop: loop)
        defer { Task { for client in [operatorClient, mallory] { await client.close() } } }

        // The operator may, whatever the flags.
        try await operatorClient.mint(100, to: Keys.alice.publicKey)
        #expect(try await operatorClient.advance(by: 10) == ChainTime(seconds: 10))

        // Mallory, through the public client API.
        if faucetOpen {
            try await mallory.mint(1_000, to: Keys.mallory.publicKey)
        } else {
            let refused = await settlementError { () async throws(SettlementError) in
                try await mallory.mint(1_000, to: Keys.mallory.publicKey)
            }
            #expect(refused == .notPermitted("\(DevchainRefusal.faucetNotAllowed)"))
        }
        if clockOpen {
            #expect(try await mallory.advance(by: 3_600) == ChainTime(seconds: 3_610))
        } else {
            await #expect(throws: DevchainError.refused(.timeTravelNotAllowed)) { try await mallory.advance(by: 3_600) }
        }
        // And as a raw session sees it: typed refusals on the wire.
        let raw = try await SessionEndpoint(identity: Keys.mallory, loop: loop).connect(to: daemon.address, expecting: daemon.key)
        defer { raw.close() }
        let rawMint = try await Self.answer(to: .submit(.mint(account: Keys.mallory.publicKey, amount: 5)), on: raw, id: 1)
        let rawAdvance = try await Self.answer(to: .advance(seconds: 5), on: raw, id: 2)
        #expect(rawMint == (faucetOpen ? .ok([0, 0, 0, 0]) : .failed(.faucetNotAllowed)))  // ok: no events
        #expect(rawAdvance == (clockOpen ? .ok(ChainTime(seconds: 3_615).wireBytes) : .failed(.timeTravelNotAllowed)))

        // A refusal changed nothing: balances and time are what the allowed requests made them.
        #expect(try await mallory.balance(of: Keys.mallory.publicKey) == (faucetOpen ? 1_005 : 0))
        #expect(try await mallory.balance(of: Keys.alice.publicKey) == 100)
        #expect(try await mallory.now() == ChainTime(seconds: clockOpen ? 3_615 : 10))
        // Nor was it persisted: a restart replays the accepted mints only.
        await mallory.close()
        await operatorClient.close()
        daemon.stop(SIGTERM)
        let again = try DevchainDaemon.start(directory: directory, identity: operatorKey, access: access)
        #expect(again.replayed == (faucetOpen ? 3 : 1))
        #expect(again.ready["time"] as? Int == (clockOpen ? 3_615 : 10))
    }

    @Test func aDaemonOnTheWellKnownKeySaysItIsForLocalDevelopmentAndLetsEveryClientMintAndAdvance() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory, access: [])
        #expect(daemon.key == Devchain.wellKnownKey)
        #expect(daemon.ready["faucet"] as? String == "anyone")
        #expect(daemon.ready["timeTravel"] as? String == "anyone")
        let client = try await DevchainClient.connect(to: daemon.url, identity: Keys.mallory, loop: try TestLoop.get())
        defer { Task { await client.close() } }
        try await client.mint(7, to: Keys.mallory.publicKey)
        #expect(try await client.advance(by: 5) == ChainTime(seconds: 5))
        #expect(try await offPool { daemon.stderr.wait(until: Date(timeIntervalSinceNow: 5)) { $0.joined().contains("For local development only") } })
    }

    @Test func aRequestTheDaemonDoesNotAnswerFailsAfterTheRequestTimeoutAndTheClientRecovers() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory)
        let timeout = Duration.seconds(1)
        // Generous: the bound is that a request fails at all, not how promptly on a loaded machine.
        let bound = Duration.seconds(8)
        let client = DevchainClient(
            address: daemon.address, identity: Keys.alice, loop: try TestLoop.get(), expecting: daemon.key,
            requestTimeout: timeout)
        defer { Task { await client.close() } }
        #expect(client.requestTimeout == timeout)
        #expect(DevchainClient.defaultRequestTimeout == .seconds(10))
        // Up and answering first (on a loaded machine one early request may itself time out).
        #expect(await eventually(within: .seconds(20)) { (try? await client.now()) == .zero })

        // Frozen, the daemon reads nothing and answers nothing, but the connection stays up.
        try daemon.freeze()
        let id = ChannelID(digest: Blake2b.hash256(domain: DigestDomain("test"), [1]))
        let reads: [(String, () async throws(SettlementError) -> Void)] = [
            ("now", { () async throws(SettlementError) in _ = try await client.now() }),
            ("balance", { () async throws(SettlementError) in _ = try await client.balance(of: Keys.alice.publicKey) }),
            ("channel", { () async throws(SettlementError) in _ = try await client.channel(id) }),
            ("domain", { () async throws(SettlementError) in _ = try await client.domain() }),
            ("mint", { () async throws(SettlementError) in try await client.mint(7, to: Keys.alice.publicKey) }),
        ]
        for (name, call) in reads {
            let started = ContinuousClock.now
            let error = await settlementError(call)
            let took = ContinuousClock.now - started
            guard case let .transport(why)? = error else {
                Issue.record("\(name): expected .transport, got \(String(describing: error))")
                continue
            }
            #expect(why.contains("no answer from the devchain at \(daemon.address) within"), "\(name): \(why)")
            #expect(took >= timeout && took < bound, "\(name) took \(took)")
        }
        for (name, call) in [
            ("info", { () async throws(DevchainError) in _ = try await client.info() }),
            ("advance", { () async throws(DevchainError) in try await client.advance(by: 5) }),
        ] as [(String, () async throws(DevchainError) -> Void)] {
            let started = ContinuousClock.now
            do {
                try await call()
                Issue.record("\(name): expected a DevchainError")
            } catch {
                guard case let .transport(why) = error else {
                    Issue.record("\(name): expected .transport, got \(error)")
                    continue
                }
                #expect(why.contains("no answer from the devchain"), "\(name): \(why)")
                if name == "advance" { #expect(why.contains("may or may not have been applied"), "\(why)") }
            }
            #expect(ContinuousClock.now - started < bound)
        }

        // Resumed, the daemon answers every old request; those answers are dropped (each request
        // already ended), and the next requests get their own. The mint and the clock move were
        // applied after all, which is why the error said to re-read chain state.
        daemon.thaw()
        #expect(try await client.now() == ChainTime(seconds: 5))
        #expect(try await client.balance(of: Keys.alice.publicKey) == 7)
        #expect(try await client.domain() == .devchainDefault)
    }

    @Test func blockTimeMovesTheClockByItselfAndRefusesAdvance() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DevchainDaemon.start(directory: directory, timeArguments: ["--block-time", "100"])
        #expect(daemon.ready["manualTime"] as? Bool == false)
        let client = DevchainClient(address: daemon.address, identity: Keys.alice, loop: try TestLoop.get(), expecting: daemon.key)
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
        let client = try await DevchainClient.connect(to: daemon.url, identity: Keys.alice)
        try await client.advance(by: 30)
        let info = try await client.info()
        #expect(
            info == DevchainInfo(
                challengeDefault: 120, manualTime: true, lastSequence: 0, time: ChainTime(seconds: 30),
                domain: try SettlementDomain(chainID: 77)))
        #expect(try await client.domain() == SettlementDomain(chainID: 77))
        await client.close()
    }

    @Test func aClientPinningAnotherKeyFailsAtOnceWithAClearErrorAndOnePinningTheDaemonsKeyWorks() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemonKey = SigningKey()  // B
        let otherKey = SigningKey()  // A
        let daemon = try DevchainDaemon.start(directory: directory, identity: daemonKey)
        #expect(daemon.url == "devchain://\(daemonKey.publicKey.humanForm)@\(daemon.address)")
        #expect(try await offPool { daemon.stderr.wait(until: Date(timeIntervalSinceNow: 5)) { $0.joined().contains(daemon.url) } })
        let loop = try TestLoop.get()

        // Pinning A (or, with a bare address, the well-known key): refused, well before connectTimeout.
        for (address, pinned) in [
            ("devchain://\(otherKey.publicKey.humanForm)@\(daemon.address)", otherKey.publicKey),
            ("devchain://\(daemon.address)", Devchain.wellKnownKey),
        ] {
            let started = ContinuousClock.now
            // A long connect timeout: failing "at once" means well before it, even on a loaded machine.
            let patience = Duration.seconds(60)
            do {
                let client = try await DevchainClient.connect(to: address, identity: Keys.alice, loop: loop, connectTimeout: patience)
                await client.close()
                Issue.record("connected to a daemon proving another key than \(pinned)")
            } catch {
                #expect(error == .wrongDaemonKey(address: daemon.address, pinned: pinned, proved: daemonKey.publicKey))
                #expect(error.description.contains("proved the key \(daemonKey.publicKey.humanForm), not the pinned \(pinned.humanForm)"))
            }
            #expect(ContinuousClock.now - started < patience / 2)
        }
        // A client made without waiting fails its requests the same way, through the adapter's error type.
        let unwaited = DevchainClient(address: daemon.address, identity: Keys.bob, loop: loop, expecting: otherKey.publicKey)
        let error = await settlementError { () async throws(SettlementError) in _ = try await unwaited.now() }
        #expect(error == .transport(DevchainError.wrongDaemonKey(address: daemon.address, pinned: otherKey.publicKey, proved: daemonKey.publicKey).description))
        await unwaited.close()

        // Pinning B works.
        let pinned = try await DevchainClient.connect(to: daemon.url, identity: Keys.alice, loop: loop)
        #expect(pinned.daemonKey == daemonKey.publicKey)
        #expect(try await pinned.info().manualTime)
        await pinned.close()
        #expect(throws: DevchainError.self) { try Devchain.endpoint("devchain://pk1nope@127.0.0.1:1") }
    }

    /// `parley node --chain devchain://pk1…@HOST:PORT` pins the key before @ (as every command
    /// taking `--chain` does, through `DevchainClient.connect(to:)`).
    @Test func theNodeCommandPinsTheKeyInItsChainAddress() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemonKey = SigningKey()
        let daemon = try DevchainDaemon.start(directory: directory + "/chain", identity: daemonKey)
        let nodeKey = directory + "/node.key"
        try KeyFile.write(SigningKey(), to: nodeKey)
        let impostor = "devchain://\(SigningKey().publicKey.humanForm)@\(daemon.address)"
        let run = try await DevchainDaemon.run([
            "node", "--key", nodeKey, "--listen", "127.0.0.1:0", "--journal", directory + "/journal", "--chain", impostor,
        ])
        #expect(run.status != 0)
        #expect(run.stderr.contains("proved the key \(daemonKey.publicKey.humanForm)"), "\(run.stderr)")

        // With the daemon's key it starts (and says it is ready on its first line).
        let (node, stdout, stderr) = try DevchainDaemon.launch(
            ["node", "--key", nodeKey, "--listen", "127.0.0.1:0", "--journal", directory + "/journal", "--chain", daemon.url],
            standardInput: .pipe)
        defer {
            node.signal(SIGKILL)
            node.waitUntilExit()
        }
        let first = try await offPool { stdout.firstLine(before: Date(timeIntervalSinceNow: 20)) }
        #expect(first?.contains("\"ready\"") == true, "stdout: \(stdout.text) stderr: \(stderr.text)")
    }

    @Test func unreachableDaemonFailsWithATransportError() async throws {
        // A port nothing listens on: bound by a socket that never listens, and held until the
        // test ends, so no other process of the run (a devchain, a local EVM) can take it and
        // answer; connecting to it is refused.
        let loop = try TestLoop.get()
        let refusing = try RefusingPort()
        let address = SocketAddress.loopbackIPv4(port: refusing.port)
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
        let client = DevchainClient(address: first.address, identity: Keys.alice, loop: try TestLoop.get(), expecting: first.key)
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
            .response(id: 3, .failed(.clockNotManual(blockMilliseconds: 1000))), .response(id: 4, .failed(.faucetNotAllowed)),
            .response(id: 5, .failed(.timeTravelNotAllowed)), .response(id: 6, .failed(.tooManySubscriptions(limit: 64))),
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
