import Foundation
import ParleyCrypto
import ParleyTestSupport
import ParleyWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 22: `parley node` as people run it. Concurrent commands, a control socket that
/// outlives stdin, truthful answers after a close, and the rough edges of the tour: real
/// `parley node` and `parley ctl` subprocesses on a real devchain.
@Suite("parley node as a daemon", .serialized, .timeLimit(.minutes(2)))
struct NodeControlTests {
    /// A slow `open` (a peer that accepts the TCP connection and never answers the
    /// handshake) no longer holds the console: `status` typed after it answers first, with
    /// its own id, and the open still answers later with its.
    @Test func aSlowCommandDoesNotHoldTheOthers() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let alice = try await world.start("alice", key: SigningKey())
        let silent = try SilentListener()
        let openID = alice.start("open \(SigningKey().publicKey.humanForm)@127.0.0.1:\(silent.port) 10 10")
        let status = try await alice.command("status", timeout: 20)
        #expect(status.ok == true && status.id != openID, "\(status.raw)")
        let open = try await alice.answer(to: openID, timeout: 45)
        #expect(open.ok == false, "\(open.raw)")
        // The order of the lines is the order of the answers: status came first.
        let answers = alice.lines().compactMap(\.id)
        #expect(answers.firstIndex(of: status.id ?? "") ?? .max < answers.firstIndex(of: openID) ?? .max, "\(answers)")
        try await alice.quit()
    }

    /// A refused connection fails `open` at once with the reason, not after 30 s; and a
    /// mistyped address is never written to the peers file.
    @Test func aRefusedConnectionFailsOpenFastAndLeavesThePeersFileAlone() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 10, theirs: 10)
        let peers = "\(alice.journal)/peers"
        let before = try String(contentsOfFile: peers, encoding: .utf8)
        #expect(before.contains("127.0.0.1:\(bob.port)"), "\(before)")

        let refusing = try RefusingPort()
        let stranger = SigningKey().publicKey.humanForm
        let started = Date()
        let refused = try await alice.command("open \(stranger)@127.0.0.1:\(refusing.port) 5 5", timeout: 20)
        #expect(refused.ok == false, "\(refused.raw)")
        // Well under the open's own 30 s, with room for a loaded machine.
        #expect(Date().timeIntervalSince(started) < 20, "a refused connection took \(Date().timeIntervalSince(started)) s")
        #expect((refused.error ?? "").localizedCaseInsensitiveContains("refused"), "\(refused.raw)")
        #expect(refused.hint != nil, "\(refused.raw)")

        // Bob again at a mistyped port: the session that is up is used and the book keeps
        // the address that works.
        let again = try await alice.command("open \(bob.key)@127.0.0.1:\(refusing.port) 5 5", timeout: 20)
        #expect(again.ok == true, "\(again.raw)")
        #expect(again.channel != id)
        #expect(try String(contentsOfFile: peers, encoding: .utf8) == before)
        try await alice.quit()
        try await bob.quit()
    }

    /// The control socket serves the console's commands to `parley ctl`, with mode 0600;
    /// the node outlives its stdin and stops on SIGTERM, removing the socket.
    @Test func theControlSocketServesCtlAndTheNodeRunsWithoutStdinUntilSIGTERM() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let socket = "\(world.directory)/alice.sock"
        let bob = try await world.start("bob", key: SigningKey())
        let alice = try await world.start("alice", key: SigningKey(), extra: ["--control", "unix:\(socket)"])
        var info = stat()
        #expect(stat(socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600, "socket mode \(String(info.st_mode & 0o777, radix: 8))")

        try alice.closeInput()
        try await Task.sleep(for: .milliseconds(300))
        #expect(alice.process.isRunning, "the node ended with its stdin although it serves a control socket")

        let ctl = ["ctl", "--control", "unix:\(socket)"]
        let open = try await DevchainDaemon.run(ctl + ["--json", "open", "\(bob.key)@127.0.0.1:\(bob.port)", "40", "60"])
        #expect(open.status == 0, "\(open.stderr)")
        let opened = try OutputLine.parse(open.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let id = try #require(opened.channel)
        #expect(opened.balances == Balances(me: 40, peer: 60))
        _ = try await bob.event(timeout: 15) { $0.event == "funded" && $0.channel == id }

        let paid = try await DevchainDaemon.run(ctl + ["pay", String(id.prefix(8)), "15"])
        #expect(paid.status == 0, "\(paid.stderr)")
        #expect(paid.stdout.contains("me 25, peer 75"), "human output: \(paid.stdout)")

        let balance = try await DevchainDaemon.run(ctl + ["--json", "balance"])
        #expect(balance.status == 0, "\(balance.stderr)")
        let account = try OutputLine.parse(balance.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(account.chainBalance == NodeCommandTests.minted - 40)

        let refused = try await DevchainDaemon.run(ctl + ["pay", String(id.prefix(8)), "1000"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("error:"), "\(refused.stderr)")
        let typo = try await DevchainDaemon.run(ctl + ["stauts"])
        #expect(typo.status != 0)
        #expect(typo.stderr.contains("did you mean 'status'"), "\(typo.stderr)")
        let nobody = try await DevchainDaemon.run(["ctl", "--control", "unix:\(world.directory)/nobody.sock", "status"])
        #expect(nobody.status == 2)
        #expect(nobody.stderr.contains("cannot reach a node"), "\(nobody.stderr)")

        alice.process.signal(SIGTERM)
        let status = try await alice.exitStatus()
        #expect(status == 0, "stderr: \(alice.stderr.text)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file was left behind")
        try await bob.quit()
    }

    /// After a close, every answer tells the truth: the channel says closed (not closing,
    /// not syncing), and `dispute` on it is refused.
    @Test func aClosedChannelSaysSoAndRefusesADispute() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 30, theirs: 30)
        let closed = try await alice.command("close \(id)", timeout: 20)
        #expect(closed.ok == true, "\(closed.raw)")
        let channel = try #require(try await alice.command("status").channels?.first { $0.channel == id })
        #expect(channel.status == "closed" && channel.phase == "closed" && channel.closed && !channel.closing, "\(channel)")
        let dispute = try await alice.command("dispute \(id)")
        #expect(dispute.ok == false, "\(dispute.raw)")
        #expect((dispute.error ?? "").contains("closed"), "\(dispute.raw)")
        let pay = try await alice.command("pay \(id) 1")
        #expect(pay.ok == false && (pay.error ?? "").contains("is closed"), "\(pay.raw)")
        try await alice.quit()
        try await bob.quit()
    }

    /// `close` to a peer that does not answer fails after its deadline with a hint to
    /// `dispute`, instead of holding the console for ever.
    @Test func closeToAPeerThatDoesNotAnswerFailsWithAHintToDispute() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let bob = try await world.start("bob", key: SigningKey())
        let alice = try await world.start("alice", key: SigningKey(), extra: ["--close-timeout", "2"])
        let id = try await world.open(from: alice, to: bob, mine: 30, theirs: 30)
        #expect(try await bob.command("silence").ok == true)
        let started = Date()
        let close = try await alice.command("close \(id)", timeout: 15)
        #expect(close.ok == false, "\(close.raw)")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect((close.hint ?? "").contains("dispute"), "\(close.raw)")
        alice.kill()
        bob.kill()
    }

    /// COUNT payments that cannot all be made are not started; nothing moves.
    @Test func paymentsThatCannotAllGoThroughPayNothing() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 50, theirs: 50)
        let drain = try await alice.command("pay \(id) 1 1000000")
        #expect(drain.ok == false && drain.paid == 0, "\(drain.raw)")
        #expect((drain.error ?? "").contains("only 50 available"), "\(drain.raw)")
        let overflow = try await alice.command("pay \(id) 340282366920938463463374607431768211456")
        #expect(overflow.ok == false && (overflow.error ?? "").contains("AMOUNT is too large"), "\(overflow.raw)")
        let status = try await alice.command("status")
        #expect(status.channels?.first?.version == 0, "\(status.raw)")
        try await alice.quit()
        try await bob.quit()
    }

    /// A node started on another key's journal refuses to start and names both keys; and
    /// `--mint` tops the account up to its figure rather than minting again on each start.
    @Test func anotherKeysJournalIsRefusedAndMintTopsUp() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        _ = try await world.open(from: alice, to: bob, mine: 100, theirs: 100)
        try await alice.quit()

        let stranger = SigningKey()
        let keyPath = "\(world.directory)/stranger.key"
        try KeyFile.write(stranger, to: keyPath)
        let refused = try await DevchainDaemon.run([
            "node", "--key", keyPath, "--listen", "127.0.0.1:0", "--journal", alice.journal,
            "--chain", "devchain://\(world.chain.daemon.address)",
        ])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains(alice.key) && refused.stderr.contains(stranger.publicKey.humanForm), "\(refused.stderr)")

        let again = try await world.restart(alice, mint: NodeCommandTests.minted)
        #expect(try await world.account(again) == NodeCommandTests.minted, "topped up to --mint, not minted again")
        try await again.quit()
        try await bob.quit()
    }
}


extension NodeControlTests {
    /// `open` with more than our chain account holds is refused before anything is signed:
    /// the peer never deposits, so nothing of its waits for a funding timeout.
    @Test func openingWithMoreThanTheAccountHoldsSignsNothing() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let open = try await alice.command("open \(bob.key)@127.0.0.1:\(bob.port) \(NodeCommandTests.minted + 1) 10", timeout: 10)
        #expect(open.ok == false, "\(open.raw)")
        #expect((open.error ?? "").contains("chain account holds \(NodeCommandTests.minted)"), "\(open.raw)")
        #expect(try await alice.command("status").channels?.isEmpty == true)
        #expect(try await world.account(bob) == NodeCommandTests.minted, "bob deposited for a channel that cannot be funded")
        try await alice.quit()
        try await bob.quit()
    }
}

extension NodeControlTests {
    /// A node learns where a peer listens from the peer's own announcement: Bob, who only
    /// accepted Alice's session, keeps her address (her port, at the address her session
    /// came from), so he can dial her after a restart.
    @Test func theAcceptingSideLearnsThePeersAddressFromItsAnnouncement() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        _ = try await world.open(from: alice, to: bob, mine: 10, theirs: 10)
        let peers = "\(bob.journal)/peers"
        let expected = "\(alice.signingKey.publicKey.hex) 127.0.0.1:\(alice.port)"
        #expect(await eventually { ((try? String(contentsOfFile: peers, encoding: .utf8)) ?? "").contains(expected) },
                "bob's peers file: \((try? String(contentsOfFile: peers, encoding: .utf8)) ?? "missing")")
        try await alice.quit()
        try await bob.quit()
    }
}
