import Foundation
import ParleyCrypto
import ParleyDevchain
import ParleySubprocess
import ParleyTestSupport
import ParleyWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `parley node` as a user drives it: real subprocesses (a `parley devchain` with manual
/// time and two nodes), commands written to stdin, JSON lines read from stdout.
@Suite("parley node", .serialized, .timeLimit(.minutes(1)))
struct NodeCommandTests {
    static let minted: Amount = 1_000

    @Test func paymentsBothWaysAgreeAndCloseSettlesEveryUnitOnChain() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 100, theirs: 100)

        let paid = try await alice.command("pay \(id.prefix(8)) 20")
        #expect(paid.ok == true, "\(paid.raw)")
        #expect(paid.version == 1)
        #expect(paid.balances == Balances(me: 80, peer: 120))

        let back = try await bob.command("pay \(id.prefix(12)) 5")
        #expect(back.ok == true, "\(back.raw)")
        #expect(back.version == 2)
        #expect(back.balances == Balances(me: 115, peer: 85))

        let (mine, theirs) = try await world.agreedStatus(alice, bob, channel: id)
        #expect(mine.version == 2)
        #expect(mine.balances == Balances(me: 85, peer: 115))
        #expect(theirs.balances == Balances(me: 115, peer: 85))
        #expect(mine.seat == 0 && theirs.seat == 1)
        #expect(mine.funded == true && mine.connected == true && mine.closed == false)

        let closed = try await alice.command("close \(id)", timeout: 20)
        #expect(closed.ok == true, "\(closed.raw)")
        #expect(closed.payout == 85)
        let bobPaid = try await bob.event(timeout: 15) { $0.event == "withdrawn" && $0.channel == id }
        #expect(bobPaid.amount == 115)
        _ = try await bob.event(timeout: 15) { $0.event == "closed" && $0.channel == id }

        let aliceAccount = try await world.account(alice)
        let bobAccount = try await world.account(bob)
        #expect(aliceAccount == Self.minted - 100 + 85)
        #expect(bobAccount == Self.minted - 100 + 115)
        #expect(aliceAccount + bobAccount == 2 * Self.minted, "no unit appears or vanishes")
        try await alice.quit()
        try await bob.quit()
    }

    @Test func badCommandsAnswerWithAReadableErrorAndTheNodeKeepsServing() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 50, theirs: 50)

        let bad: [(line: String, verb: String, mentions: String)] = [
            ("pay nonsense", "pay", "usage"),
            ("pay nonsense 5", "pay", "not a channel id"),
            ("pay 0123456789abcdef 5", "pay", "no channel"),
            ("pay \(id.prefix(4)) 5", "pay", "at least 8"),
            ("pay \(id) five", "pay", "whole number"),
            ("pay \(id) 0", "pay", "positive"),
            ("pay \(id) -3", "pay", "whole number"),
            ("pay \(id) 51", "pay", "only 50 available"),
            ("open garbage", "open", "usage"),
            ("open garbage 1 1", "open", "PUBKEY@HOST:PORT"),
            ("open pk1nope@127.0.0.1:1 1 1", "open", "bad public key"),
            ("open \(bob.key)@nowhere 1 1", "open", "address"),
            ("close", "close", "usage"),
            ("dispute ffffffffffff", "dispute", "no channel"),
            ("frobnicate the channel", "frobnicate", "unknown command"),
        ]
        for (line, verb, mentions) in bad {
            let answer = try await alice.command(line)
            #expect(answer.ok == false, "\(line) → \(answer.raw)")
            #expect(answer.command == verb, "\(line) → \(answer.raw)")
            let error = answer.error ?? ""
            #expect(error.localizedCaseInsensitiveContains(mentions), "\(line) → \(error)")
        }

        let status = try await alice.command("status")
        #expect(status.ok == true)
        #expect(status.channels?.first?.version == 0, "nothing changed: \(status.raw)")
        #expect(status.channels?.first?.balances == Balances(me: 50, peer: 50))
        let good = try await alice.command("pay \(id) 50")
        #expect(good.ok == true, "\(good.raw)")
        #expect(good.balances == Balances(me: 0, peer: 50 + 50))
        try await bob.quit()
        try await alice.endOfInput()
    }

    @Test func killedMidStreamTheNodeResumesFromItsJournalAndLosesNothing() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        // One update per payment, so the kill lands in a long stream of commits: with
        // coalescing, the 400 payments below ride in two or three updates.
        let oneByOne = ["--max-payments-per-update", "1"]
        let bob = try await world.start("bob", key: SigningKey())
        var alice = try await world.start("alice", key: SigningKey(), extra: oneByOne)
        let id = try await world.open(from: alice, to: bob, mine: 500, theirs: 500)

        let burst = 400
        alice.send(String(repeating: "pay \(id.prefix(16)) 1\n", count: burst))
        let answeredBefore = 1  // the open
        let answered = try await alice.answers(atLeast: answeredBefore + 40, timeout: 15)
        alice.kill()
        let acknowledged = answered.dropFirst(answeredBefore)
        #expect(acknowledged.allSatisfy { $0.command == "pay" && $0.ok == true }, "\(acknowledged.map(\.raw))")
        let lastAcked = acknowledged.compactMap(\.version).max() ?? 0
        let lastAckedPeerBalance = acknowledged.compactMap(\.balances?.peer).max() ?? 0
        #expect(lastAcked >= 40)
        #expect(acknowledged.count < burst, "the kill came mid-stream")

        alice = try await world.restart(alice, extra: oneByOne)
        #expect(alice.ready.channelCount == 1)
        let (mine, theirs) = try await world.agreedStatus(alice, bob, channel: id)
        #expect(mine.version >= lastAcked, "acknowledged version \(lastAcked) lost: now \(mine.version)")
        #expect(mine.balances.peer >= lastAckedPeerBalance)
        #expect(mine.balances.me + mine.balances.peer == 1_000)
        let bobLatest = bob.events().filter { $0.event == "committed" && $0.channel == id }.compactMap(\.version).max()
        #expect(theirs.version == bobLatest, "Bob's latest commit is the agreed state")

        let more = try await alice.command("pay \(id) 7")
        #expect(more.ok == true, "\(more.raw)")
        #expect((more.version ?? 0) > mine.version)
        let final = try #require(more.balances)
        let closed = try await alice.command("close \(id)", timeout: 20)
        #expect(closed.ok == true, "\(closed.raw)")
        #expect(closed.payout == final.me)
        let bobPaid = try await bob.event(timeout: 15) { $0.event == "withdrawn" && $0.channel == id }
        #expect(bobPaid.amount == final.peer)
        #expect((closed.payout ?? 0) + (bobPaid.amount ?? 0) == 1_000, "payouts sum to the deposits")
        _ = try await bob.event(timeout: 15) { $0.event == "closed" && $0.channel == id }
        let aliceAccount = try await world.account(alice)
        let bobAccount = try await world.account(bob)
        #expect(aliceAccount == Self.minted - 500 + final.me)
        #expect(bobAccount == Self.minted - 500 + final.peer)
        try await alice.quit()
        try await bob.quit()
    }

    @Test func disputeAnswersAtOnceAndBothSidesArePaidOnceTheWindowHasPassed() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 100, theirs: 100)
        #expect(try await alice.command("pay \(id) 30").version == 1)

        let disputed = try await alice.command("dispute \(id.prefix(8))")
        #expect(disputed.ok == true, "\(disputed.raw)")
        #expect(disputed.channel == id)
        let registered = try await bob.event(timeout: 15) { $0.event == "registered" && $0.channel == id }
        #expect(registered.version == 1)
        let refused = try await alice.command("pay \(id) 1")
        #expect(refused.ok == false)
        #expect(refused.error?.contains("is closing (our watcher is exiting on chain: a dispute was requested)") == true, "\(refused.raw)")

        _ = try await world.chain.client(for: alice.signingKey).advance(by: NodeProcess.challengeSeconds + 1)
        let alicePaid = try await alice.event(timeout: 15) { $0.event == "withdrawn" && $0.channel == id }
        let bobPaid = try await bob.event(timeout: 15) { $0.event == "withdrawn" && $0.channel == id }
        #expect(alicePaid.amount == 70)
        #expect(bobPaid.amount == 130)
        _ = try await alice.event(timeout: 15) { $0.event == "closed" && $0.channel == id }
        let status = try await alice.command("status")
        #expect(status.channels?.first { $0.channel == id }?.closed == true, "\(status.raw)")
        #expect(
            status.channels?.first { $0.channel == id }?.closingReason
                == "our watcher is exiting on chain: a dispute was requested", "the first cause is kept: \(status.raw)")
        #expect(try await world.account(alice) == Self.minted - 100 + 70)
        #expect(try await world.account(bob) == Self.minted - 100 + 130)
        try await alice.quit()
        try await bob.quit()
    }
}

// MARK: - Fixture

struct NodeCommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One devchain, a scratch directory, and the nodes started in it (killed on tear-down).
final class NodeWorld: @unchecked Sendable {
    let chain: DevchainFixture
    let directory: String
    private var started: [NodeProcess] = []

    init() throws {
        chain = try DevchainFixture.start()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-node-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Bob listening, Alice listening too (she dials), each minted `NodeCommandTests.minted`.
    func startPair() async throws -> (alice: NodeProcess, bob: NodeProcess) {
        let bob = try await start("bob", key: SigningKey())
        let alice = try await start("alice", key: SigningKey())
        return (alice, bob)
    }

    func start(
        _ name: String, key: SigningKey, journal: String? = nil, mint: Amount = NodeCommandTests.minted, extra: [String] = []
    ) async throws -> NodeProcess {
        let keyPath = "\(directory)/\(name).key"
        try KeyFile.write(key, to: keyPath)
        let node = try await NodeProcess.start(
            name: name, signingKey: key, keyPath: keyPath, journal: journal ?? "\(directory)/\(name)",
            chain: chain.daemon.address.description, port: 0, mint: mint, extra: extra)
        started.append(node)
        return node
    }

    /// The same node again after a crash: same key, journal and port, nothing minted.
    func restart(_ node: NodeProcess, mint: Amount = 0, extra: [String] = []) async throws -> NodeProcess {
        let again = try await NodeProcess.start(
            name: node.name, signingKey: node.signingKey, keyPath: node.keyPath, journal: node.journal,
            chain: chain.daemon.address.description, port: node.port, mint: mint, extra: extra)
        started.append(again)
        return again
    }

    /// `open` from `opener`; returns the channel id once the responder also saw it funded.
    func open(from opener: NodeProcess, to responder: NodeProcess, mine: Amount, theirs: Amount) async throws -> String {
        let answer = try await opener.command("open \(responder.key)@127.0.0.1:\(responder.port) \(mine) \(theirs)", timeout: 20)
        guard answer.ok == true, let id = answer.channel, answer.version == 0 else {
            throw NodeCommandFailure("open failed: \(answer.raw)")
        }
        #expect(answer.balances == Balances(me: mine, peer: theirs))
        #expect(id.count == 64)
        _ = try await responder.event(timeout: 15) { $0.event == "opened" && $0.channel == id }
        _ = try await responder.event(timeout: 15) { $0.event == "funded" && $0.channel == id }
        return id
    }

    /// Polls `status` on both until they show the same connected, idle state of `channel`.
    func agreedStatus(
        _ first: NodeProcess, _ second: NodeProcess, channel: String, timeout: TimeInterval = 15
    ) async throws -> (ChannelLine, ChannelLine) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var last = ""
        while Date() < deadline {
            let a = try await first.command("status").channels?.first { $0.channel == channel }
            let b = try await second.command("status").channels?.first { $0.channel == channel }
            if let a, let b, a.version == b.version, a.balances.me == b.balances.peer, a.balances.peer == b.balances.me,
                a.connected && b.connected, a.phase == "idle" && b.phase == "idle"
            {
                return (a, b)
            }
            last = "\(String(describing: a)) / \(String(describing: b))"
            try await Task.sleep(for: .milliseconds(50))
        }
        throw NodeCommandFailure("the nodes never agreed on channel \(channel.prefix(8)): \(last)")
    }

    func account(_ node: NodeProcess) async throws -> Amount {
        try await chain.client(for: node.signingKey).balance(of: node.signingKey.publicKey)
    }

    func tearDown() {
        for node in started { node.kill() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

// MARK: - One `parley node` subprocess

struct Balances: Decodable, Equatable, Sendable {
    var me: Amount
    var peer: Amount
}

struct ChannelLine: Decodable, Sendable {
    var channel: String
    var peer: String
    var seat: Int
    var version: UInt64
    var balances: Balances
    var phase: String
    /// funding, open, closing, closed or abandoned.
    var status: String
    var funded: Bool
    var closing: Bool
    var closingReason: String?
    var closed: Bool
    var connected: Bool
}

/// One stdout line of `parley node`: an answer (has `ok`) or an event (has `event`).
struct OutputLine: Decodable, Sendable {
    var raw = ""
    var id: String?
    var hint: String?
    var paid: UInt64?
    var chainBalance: Amount?
    var ok: Bool?
    var command: String?
    var error: String?
    var event: String?
    var channel: String?
    var version: UInt64?
    var balances: Balances?
    var payout: Amount?
    var amount: Amount?
    var key: String?
    var listening: String?
    /// `status` lists channels; `ready` counts them.
    var channels: [ChannelLine]?
    var channelCount: Int?

    private enum Keys: String, CodingKey {
        case ok, command, error, event, channel, version, balances, payout, amount, key, listening, channels
        case id, hint, paid, chainBalance
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        ok = try container.decodeIfPresent(Bool.self, forKey: .ok)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        hint = try container.decodeIfPresent(String.self, forKey: .hint)
        paid = try container.decodeIfPresent(UInt64.self, forKey: .paid)
        chainBalance = try container.decodeIfPresent(Amount.self, forKey: .chainBalance)
        command = try container.decodeIfPresent(String.self, forKey: .command)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        event = try container.decodeIfPresent(String.self, forKey: .event)
        channel = try? container.decodeIfPresent(String.self, forKey: .channel)
        version = try container.decodeIfPresent(UInt64.self, forKey: .version)
        balances = try container.decodeIfPresent(Balances.self, forKey: .balances)
        payout = try container.decodeIfPresent(Amount.self, forKey: .payout)
        amount = try container.decodeIfPresent(Amount.self, forKey: .amount)
        key = try container.decodeIfPresent(String.self, forKey: .key)
        listening = try? container.decodeIfPresent(String.self, forKey: .listening)
        channels = try? container.decodeIfPresent([ChannelLine].self, forKey: .channels)
        channelCount = try? container.decodeIfPresent(Int.self, forKey: .channels)
    }

    static func parse(_ text: String) throws -> OutputLine {
        do {
            var line = try JSONDecoder().decode(OutputLine.self, from: Data(text.utf8))
            line.raw = text
            return line
        } catch {
            throw NodeCommandFailure("stdout line is not what `parley node` promises (\(error)): \(text)")
        }
    }
}

/// A `parley node` child with its stdin, stdout and stderr piped; SIGKILLed when released.
final class NodeProcess: @unchecked Sendable {
    static let readyTimeout: TimeInterval = 20
    /// Chain-time challenge window of the channels the tests open (the devchain's clock moves only when told).
    static let challengeSeconds: UInt64 = 30
    static let pollInterval: Duration = .milliseconds(10)

    let name: String
    let signingKey: SigningKey
    let keyPath: String
    let journal: String
    let process: SpawnedProcess
    let stdout: PipeText
    let stderr: PipeText
    let ready: OutputLine
    let port: UInt16
    private let input: FileHandle
    /// Lines sent with `command`: the node gives a word line its line number as its id.
    private var sent = 0

    var key: String { signingKey.publicKey.humanForm }

    private init(
        name: String, signingKey: SigningKey, keyPath: String, journal: String, process: SpawnedProcess, input: FileHandle,
        stdout: PipeText, stderr: PipeText, ready: OutputLine, port: UInt16
    ) {
        self.name = name
        self.signingKey = signingKey
        self.keyPath = keyPath
        self.journal = journal
        self.process = process
        self.input = input
        self.stdout = stdout
        self.stderr = stderr
        self.ready = ready
        self.port = port
    }

    static func start(
        name: String, signingKey: SigningKey, keyPath: String, journal: String, chain: String, port: UInt16, mint: Amount,
        extra: [String] = []
    ) async throws -> NodeProcess {
        signal(SIGPIPE, SIG_IGN)  // a write to a node that died must fail, not kill the test runner
        let (process, stdout, stderr) = try DevchainDaemon.launch(
            [
                "node", "--key", keyPath, "--listen", "127.0.0.1:\(port)", "--journal", journal, "--chain", "devchain://\(chain)",
                "--mint", "\(mint)", "--proposal-timeout", "5", "--challenge", "\(challengeSeconds)",
            ] + extra, standardInput: .pipe)
        guard let input = process.standardInput else { throw NodeCommandFailure("no stdin pipe to \(name)") }
        let deadline = Date(timeIntervalSinceNow: readyTimeout)
        while stdout.lines.isEmpty, process.isRunning, Date() < deadline { try await Task.sleep(for: pollInterval) }
        guard let first = stdout.lines.first else {
            process.signal(SIGKILL)
            process.waitUntilExit()
            _ = stderr.waitForEnd(before: Date(timeIntervalSinceNow: 2))
            throw NodeCommandFailure("parley node (\(name)) printed no ready line; stderr: \(stderr.text)")
        }
        let ready = try OutputLine.parse(first)
        guard ready.event == "ready", let listening = ready.listening, let colon = listening.lastIndex(of: ":"),
            let actual = UInt16(listening[listening.index(after: colon)...])
        else {
            process.signal(SIGKILL)
            process.waitUntilExit()
            throw NodeCommandFailure("unexpected first line: \(first)")
        }
        #expect(ready.key == signingKey.publicKey.humanForm)
        return NodeProcess(
            name: name, signingKey: signingKey, keyPath: keyPath, journal: journal, process: process,
            input: input, stdout: stdout, stderr: stderr, ready: ready, port: actual)
    }

    /// Writes `text` to the node's stdin as is (add the newlines).
    func send(_ text: String) {
        try? input.write(contentsOf: Data(text.utf8))
    }

    /// Every stdout line so far, parsed.
    func lines() -> [OutputLine] { stdout.lines.compactMap { try? OutputLine.parse($0) } }
    func events() -> [OutputLine] { lines().filter { $0.event != nil } }

    /// Sends one command and returns its answer (the one with its id).
    func command(_ line: String, timeout: TimeInterval = 10) async throws -> OutputLine {
        try await answer(to: start(line), timeout: timeout)
    }

    /// Sends one command without waiting; returns the id its answer will carry.
    func start(_ line: String) -> String {
        sent += 1
        send(line + "\n")
        return String(sent)
    }

    /// Waits until at least `count` answers have come (all answers, from the start).
    func answers(atLeast count: Int, timeout: TimeInterval) async throws -> [OutputLine] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let answers = lines().filter { $0.ok != nil }
            if answers.count >= count { return answers }
            guard Date() < deadline, process.isRunning else {
                throw NodeCommandFailure("\(name): \(answers.count) of \(count) answers after \(timeout) s; stderr:\n\(stderr.text)")
            }
            try await Task.sleep(for: Self.pollInterval)
        }
    }

    /// The answer with `id`, waiting up to `timeout`.
    func answer(to id: String, timeout: TimeInterval = 10) async throws -> OutputLine {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let running = process.isRunning
            if !running { _ = stdout.waitForEnd(before: Date(timeIntervalSinceNow: 2)) }  // its last lines may be in flight
            if let answer = lines().first(where: { $0.ok != nil && $0.id == id }) { return answer }
            guard Date() < deadline, running else {
                throw NodeCommandFailure(
                    "\(name): no answer with id \(id) after \(timeout) s; stdout:\n\(stdout.text)\nstderr:\n\(stderr.text)")
            }
            try await Task.sleep(for: Self.pollInterval)
        }
    }

    /// The first event `match` accepts, waiting up to `timeout`.
    func event(timeout: TimeInterval, _ match: (OutputLine) -> Bool) async throws -> OutputLine {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            if let found = events().first(where: match) { return found }
            guard Date() < deadline else {
                throw NodeCommandFailure("\(name): no such event within \(timeout) s; stdout:\n\(stdout.text)\nstderr:\n\(stderr.text)")
            }
            try await Task.sleep(for: Self.pollInterval)
        }
    }

    /// Sends `quit`; expects its answer, a clean exit, and nothing but whole JSON lines on stdout.
    func quit(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let answer = try await command("quit")
        #expect(answer.ok == true && answer.command == "quit", "\(answer.raw)", sourceLocation: sourceLocation)
        let status = try await exitStatus()
        #expect(status == 0, "\(name) exited with \(status) after quit; stderr: \(stderr.text)", sourceLocation: sourceLocation)
        let garbled = stdout.lines.filter { line in
            guard let parsed = try? OutputLine.parse(line) else { return true }
            return (parsed.ok == nil) == (parsed.event == nil)
        }
        #expect(garbled.isEmpty, "lines that are neither one answer nor one event: \(garbled)", sourceLocation: sourceLocation)
    }

    /// Closes stdin; expects a clean exit, as after `quit`.
    func endOfInput(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try input.close()
        let status = try await exitStatus()
        #expect(status == 0, "\(name) exited with \(status) at end of input; stderr: \(stderr.text)", sourceLocation: sourceLocation)
    }

    /// Closes the node's stdin (and nothing else).
    func closeInput() throws { try input.close() }

    func exitStatus(timeout: TimeInterval = 10) async throws -> Int32 {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning {
            guard Date() < deadline else {
                kill()
                throw NodeCommandFailure("\(name) did not exit within \(timeout) s")
            }
            try await Task.sleep(for: Self.pollInterval)
        }
        return process.termination?.status ?? -1
    }

    /// SIGKILL, then reap.
    func kill() {
        guard process.isRunning else { return }
        process.signal(SIGKILL)
        process.waitUntilExit()
    }

    deinit { kill() }
}
