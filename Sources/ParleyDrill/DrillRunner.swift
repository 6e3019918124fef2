import Foundation
import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyLocks
import ParleySettlement
import ParleySubprocess
import ParleyWire

/// Runs drills with real processes: a chain with manual time (a `parley devchain`, or the
/// local EVM with Parley's adjudicator) and one `parley node` per peer, all on loopback. `crash` is SIGKILL; `restart` recovers from
/// the journal. Keys come from the seed, so a run is repeatable.
public struct DrillRunner: Sendable {
    /// The `parley` executable to start children from.
    public var executable: String
    public var seed: UInt64
    /// How long an expectation may take to come true (watchers act on their own time).
    public var settleTimeout: Duration = .seconds(15)
    /// How long a peer waits for an answer to a proposal before counting the other as silent.
    /// On the local EVM at least ``evmProposalTimeout``: a node that has just restarted reads
    /// the chain through Python for a while, and under a loaded test run the first payment
    /// after `crash-restart-bob`'s restart missed a 1 s window.
    public var proposalTimeout: Double = 1.0
    public static let evmProposalTimeout = 3.0
    /// Where each run's files go (a fresh directory inside); removed afterwards unless `keepFiles`.
    public var workDirectory: String = "/tmp"
    public var keepFiles = false
    /// Sees each timeline entry as it happens (progress for long drills).
    public var onEntry: @Sendable (TimelineEntry) -> Void = { _ in }
    /// Where the channel settles.
    public var chain: DrillChain = .devchain

    public init(executable: String, seed: UInt64) {
        self.executable = executable
        self.seed = seed
    }

    public func run(_ drill: Drill) async -> DrillResult {
        await DrillRun(drill: drill, options: self).execute()
    }
}

/// The chain a drill settles on.
public enum DrillChain: String, Sendable, CaseIterable {
    /// A `parley devchain --manual-time` child process.
    case devchain
    /// The local EVM (`Tools/evm-devnet`, manual clock from 0) with Parley's Vyper
    /// adjudicator holding the development token; the peers open Ethereum-backend channels.
    case evm
}

/// Why a drill could not go on (set-up trouble, a child that died).
struct DrillAbort: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A `parley node` child: typed requests in (control protocol JSON lines, each with an
/// id), answers and events out.
final class NodeChild: @unchecked Sendable {
    let name: String
    let executable: String
    private(set) var arguments: [String]
    private(set) var child: PipedChild
    private(set) var listening = ""
    /// Index of the next stdout line not yet looked at for events.
    private var cursor = 0
    private(set) var events: [ControlEvent] = []
    private var nextID = 0

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        child = try PipedChild(executable: executable, arguments: arguments, standardError: .capture)
    }

    /// Waits for the `ready` line and pins the port for restarts.
    func waitUntilReady() async throws {
        guard let (line, _) = await child.line(from: 0, within: .seconds(30), where: { $0.contains("\"ready\"") }),
            case let .event(ready)? = try? ControlCodec.decodeLine(line)
        else {
            child.kill()
            throw DrillAbort("\(name)'s node did not start: \(child.standardError.suffix(600))")
        }
        listening = ready.listening ?? ""
        if let index = arguments.firstIndex(of: "--listen"), !listening.isEmpty { arguments[index + 1] = listening }
    }

    /// SIGKILL, no clean-up.
    func crash() {
        collectEvents()
        child.kill(SIGKILL)
    }

    /// Starts the node again with the same key, journal and port.
    func restart() async throws {
        collectEvents()
        child = try PipedChild(executable: executable, arguments: arguments, standardError: .capture)
        cursor = 0
        try await waitUntilReady()
    }

    var isRunning: Bool { child.isRunning }

    /// Sends one command (the console's word form) as a typed request and returns its
    /// answer, told from other answers by its id.
    func command(_ line: String, timeout: Duration = .seconds(90)) async throws -> ControlResponse {
        guard isRunning else { throw DrillAbort("\(name)'s node is not running (crashed? add `- restart: \(name)`)") }
        var request: ControlRequest
        do {
            guard let parsed = try ControlCodec.words(line.split(separator: " ").map(String.init)) else {
                throw DrillAbort("empty command")
            }
            request = parsed
        } catch let error as ControlUsageError {
            throw DrillAbort("`\(line.prefix(60))`: \(error)")
        }
        nextID += 1
        let id = "drill-\(nextID)"
        request.id = id
        request.v = ControlProtocol.version
        collectEvents()
        let start = child.lineCount
        try child.send(try ControlCodec.line(request))
        guard let (answer, _) = await child.line(
                from: start, within: timeout, where: { $0.contains("\"id\":\"\(id)\"") && $0.contains("\"ok\"") }),
            case let .response(response)? = try? ControlCodec.decodeLine(answer)
        else {
            if child.hasEnded { throw DrillAbort("\(name)'s node exited: \(child.standardError.suffix(600))") }
            throw DrillAbort("\(name)'s node did not answer `\(line.prefix(60))` within \(timeout)")
        }
        return response
    }

    /// Moves event lines printed since the last call into `events`; returns the new ones.
    @discardableResult
    func collectEvents() -> [ControlEvent] {
        let fresh = child.lines(from: cursor)
        cursor += fresh.count
        let parsed = fresh.compactMap { line -> ControlEvent? in
            guard case let .event(event)? = try? ControlCodec.decodeLine(line) else { return nil }
            return event
        }
        events += parsed
        return parsed
    }
}

/// The line `parley devchain --json` prints once it listens.
struct DevchainReady: Decodable {
    let listening: String
    let key: String
}

/// Chain events as the subscription delivers them.
final class EventBox: Sendable {
    let list = Locked<[ChainEvent]>([])
}

/// The latest fully-signed state one node reports for the channel.
struct PeerView: Equatable {
    var version: UInt64
    /// By seat.
    var balances: [UInt64]
}

/// One drill, start to finish.
final class DrillRun: @unchecked Sendable {
    let drill: Drill
    let options: DrillRunner
    private var timeline: [TimelineEntry] = []
    private var steps: [DrillResult.StepResult] = []
    private var nodes: [String: NodeChild] = [:]
    private var devchain: PipedChild?
    private var evm: LocalEVM?
    private var chain: (any SettlementAdapter)?
    private var closeChain: @Sendable () async -> Void = {}
    private var chainFollower: Task<Void, Never>?
    /// Moves chain time and answers the new time.
    private var advanceChain: @Sendable (UInt64) async throws -> UInt64 = { _ in throw DrillAbort("no chain") }
    private var channel = ""
    private var channelID: ChannelID?
    private var kept: [String: String] = [:]
    /// Labels of final states a peer countersigned in secret (`hold-final`), by holder.
    private var heldBy: [String: String] = [:]
    private var chainTime: UInt64 = 0
    private let chainEvents = EventBox()
    private var chainCursor = 0
    /// The version the chain holds registered, to tell a refutation from a first registration.
    private var registered: UInt64?
    private var root = ""

    init(drill: Drill, options: DrillRunner) {
        self.drill = drill
        self.options = options
    }

    /// Outcome of one non-expect step.
    struct Outcome {
        var refused = false
        var error: String?
        var detail = ""
        var changedState = false
    }

    func execute() async -> DrillResult {
        var passed = true
        do {
            try await setUp()
            var previous: Outcome?
            for (index, step) in drill.steps.enumerated() {
                if case let .expect(expectation) = step.action {
                    let (ok, detail) = await check(expectation, previous: previous)
                    record(step, ok: ok, detail: detail)
                    note(ok ? .pass : .fail, from: "drill", "expect \(Self.describe(expectation))" + (ok ? "" : " — \(detail)"))
                    if !ok {
                        passed = false
                        break
                    }
                    if expectation.judgesPreviousStep { previous = nil }
                    continue
                }
                let before = try await views()
                var outcome = try await perform(step.action)
                // Let the watchers react (a refutation follows a registration within
                // milliseconds), so the timeline shows reactions next to their cause.
                try await Task.sleep(for: .milliseconds(150))
                collectAll()
                outcome.changedState = try await views() != before
                let next = index + 1 < drill.steps.count ? drill.steps[index + 1].action : nil
                var judged = false
                if case let .expect(expectation)? = next { judged = expectation.judgesPreviousStep }
                let failed = outcome.refused || outcome.error != nil
                if failed, !judged {
                    let why = outcome.error ?? outcome.detail
                    record(step, ok: false, detail: why)
                    note(.fail, from: "drill", "\(Self.describe(step.action)) failed: \(why)")
                    passed = false
                    break
                }
                record(step, ok: true, detail: failed ? "refused: \(outcome.error ?? outcome.detail)" : outcome.detail)
                previous = outcome
            }
        } catch {
            passed = false
            let line = drill.steps.dropFirst(steps.count).first?.line ?? 0
            steps.append(DrillResult.StepResult(step: steps.count < drill.steps.count ? Self.describe(drill.steps[steps.count].action) : "set-up", line: line, ok: false, detail: "\(error)"))
            note(.fail, from: "drill", "stopped: \(error)")
        }
        await tearDown()
        return DrillResult(
            name: drill.name, path: drill.path, description: drill.description,
            passed: passed && steps.count == drill.steps.count && steps.allSatisfy(\.ok),
            steps: steps, timeline: timeline, seed: options.seed, peers: drill.peers.map(\.name))
    }

    private func record(_ step: Drill.Step, ok: Bool, detail: String) {
        steps.append(DrillResult.StepResult(step: Self.describe(step.action), line: step.line, ok: ok, detail: detail))
    }

    private func note(
        _ kind: TimelineEntry.Kind, from: String, to: String? = nil, _ text: String, emphasis: Bool = false,
        at time: UInt64? = nil
    ) {
        let entry = TimelineEntry(time: time ?? chainTime, kind: kind, from: from, to: to, text: text, emphasis: emphasis)
        timeline.append(entry)
        options.onEntry(entry)
    }

    // MARK: - Set-up and tear-down

    private func setUp() async throws {
        var template = Array("\(options.workDirectory)/parley-drill-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw DrillAbort("cannot make a directory in \(options.workDirectory)") }
        root = String(cString: made)
        var random = SeededRandom(seed: options.seed ^ Self.nameHash(drill.name))
        let chainArguments: [String]
        switch options.chain {
        case .devchain: chainArguments = try await startDevchain(&random)
        case .evm: chainArguments = try await startEVM(&random)
        }
        guard let chain else { throw DrillAbort("no chain") }
        let events = chainEvents
        chainFollower = Task { do { for try await event in chain.events(after: 0) { events.list.withLock { $0.append(event) } } } catch {} }
        var keys: [String: SigningKey] = [:]
        for peer in drill.peers {
            let key = try Self.key(&random)
            keys[peer.name] = key
            if let evm {
                do { try await evm.setBalance(key.settlementKey.address, wei: Amount(UInt128(1_000) * 1_000_000_000_000_000_000)) } catch {
                    throw DrillAbort("cannot fund \(peer.name) on the local EVM: \(error)")
                }
            }
            let proposalTimeout = evm == nil ? options.proposalTimeout : max(options.proposalTimeout, DrillRunner.evmProposalTimeout)
            let keyFile = "\(root)/\(peer.name).key"
            do { try KeyFile.write(key, to: keyFile) } catch { throw DrillAbort("cannot write \(keyFile): \(error)") }
            let node = try NodeChild(
                name: peer.name, executable: options.executable,
                arguments: [
                    "node", "--key", keyFile, "--listen", "127.0.0.1:0", "--journal", "\(root)/\(peer.name)",
                    "--mint", "\(peer.deposit)", "--challenge", "\(drill.challenge)",
                    "--proposal-timeout", "\(proposalTimeout)", "--clock-poll-ms", "20",
                ] + chainArguments + (drill.disconnectGrace.map { ["--disconnect-grace", "\($0)"] } ?? []))
            nodes[peer.name] = node
            try await node.waitUntilReady()
        }
        let (opener, responder) = (drill.peers[0], drill.peers[1])
        guard let responderKey = keys[responder.name] else { return }
        let answer = try await node(opener.name).command(
            "open \(responderKey.publicKey.hex)@\(try node(responder.name).listening) \(opener.deposit) \(responder.deposit)"
                + (drill.game ? " tictactoe" : "") + (evm == nil ? "" : " \(responderKey.settlementKey.address)"))
        guard answer.ok, let id = answer.channel else {
            throw DrillAbort("opening the channel failed: \(answer.error ?? "no answer")")
        }
        channel = id
        channelID = Hex.decode(id).flatMap { try? Digest(bytes: $0) }.map(ChannelID.init(digest:))
        note(.message, from: opener.name, to: responder.name,
             "open channel \(id.prefix(8)): \(opener.name) \(opener.deposit), \(responder.name) \(responder.deposit)")
        // Both sides must see the channel funded before the script starts.
        try await waitUntil("both peers to see the channel funded", timeout: .seconds(20)) {
            for peer in self.drill.peers {
                let status = try await self.node(peer.name).command("status")
                let channels = status.channels ?? []
                guard channels.contains(where: { $0.channel == id && $0.funded }) else {
                    return false
                }
            }
            return true
        }
        collectAll()
    }

    /// A `parley devchain --manual-time` child; answers the nodes' chain arguments.
    private func startDevchain(_ random: inout SeededRandom) async throws -> [String] {
        let daemon = try PipedChild(
            executable: options.executable,
            arguments: ["devchain", "--listen", "127.0.0.1:0", "--data", root + "/chain", "--manual-time", "--json", "--stop-on-eof"],
            standardError: .capture)
        devchain = daemon
        guard let (line, _) = await daemon.line(from: 0, within: .seconds(30), where: { $0.contains("listening") }),
            let ready = try? JSONDecoder().decode(DevchainReady.self, from: Data(line.utf8))
        else { throw DrillAbort("the devchain did not start: \(daemon.standardError.suffix(600))") }
        // Pinned to the key the daemon announced: our client and every node refuse any other.
        let address = "devchain://\(ready.key)@\(ready.listening)"
        let client: DevchainClient
        do { client = try await DevchainClient.connect(to: address, identity: try Self.key(&random)) } catch {
            throw DrillAbort("cannot reach the devchain: \(error)")
        }
        chain = client
        closeChain = { await client.close() }
        advanceChain = { seconds in try await client.advance(by: seconds).seconds }
        return ["--chain", address]
    }

    /// The local EVM with a manual clock from 0 (drill times read as on the devchain), the
    /// contracts deployed with the development token (the nodes' `--mint` mints it).
    private func startEVM(_ random: inout SeededRandom) async throws -> [String] {
        let evm: LocalEVM
        do { evm = try LocalEVM.start(manualTime: true, startTime: 0) } catch { throw DrillAbort("\(error)") }
        self.evm = evm
        guard let deployer = evm.accounts.first else { throw DrillAbort("the local EVM has no funded accounts") }
        var options = EthereumChainOptions()
        options.pollInterval = .milliseconds(20)
        let deployment: AdjudicatorDeployment
        do {
            deployment = try await EthereumDeployer.deploy(endpoint: evm.endpoint, key: deployer.key, asset: .devToken, options: options)
        } catch {
            throw DrillAbort("deploying the contracts failed: \(error)")
        }
        options.fromBlock = deployment.block
        let observer = try Self.key(&random)
        let ethereum = EthereumChain(endpoint: evm.endpoint, adjudicator: deployment.adjudicator, options: options)
        chain = ethereum.adapter(for: observer.publicKey, key: observer.settlementKey)
        closeChain = { evm.stop() }
        advanceChain = { seconds in
            try await evm.increaseTime(seconds)
            return try await ethereum.latestTime().seconds
        }
        return [
            "--chain", evm.endpoint.absoluteString, "--adjudicator", deployment.adjudicator.description,
            "--from-block", "\(deployment.block)", "--chain-poll-ms", "20",
        ]
    }

    private func tearDown() async {
        for node in nodes.values where node.isRunning {
            _ = try? await node.command("quit", timeout: .seconds(10))
            await node.child.stop(saying: nil, timeout: .seconds(5))
        }
        chainFollower?.cancel()
        await closeChain()
        devchain?.kill(SIGTERM)
        if !options.keepFiles, !root.isEmpty { try? FileManager.default.removeItem(atPath: root) }
        if options.keepFiles, !root.isEmpty { note(.note, from: "drill", "files kept in \(root)") }
    }

    private func node(_ name: String) throws -> NodeChild {
        guard let node = nodes[name] else { throw DrillAbort("no peer named \(name)") }
        return node
    }

    private static func key(_ random: inout SeededRandom) throws -> SigningKey {
        var seed: [UInt8] = []
        for _ in 0..<4 { withUnsafeBytes(of: random.next()) { seed += $0 } }
        do { return try SigningKey(seed: seed) } catch { throw DrillAbort("key derivation: \(error)") }
    }

    /// FNV-1a, so two drills run with one seed still get different keys.
    private static func nameHash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    // MARK: - Observing

    /// Moves new node events and chain events into the timeline.
    private func collectAll() {
        for peer in drill.peers {
            guard let node = nodes[peer.name] else { continue }
            for event in node.collectEvents() { describeNodeEvent(event, of: peer.name) }
        }
        let cursor = chainCursor
        let fresh = chainEvents.list.withLock { events in cursor < events.count ? Array(events[cursor...]) : [] }
        chainCursor += fresh.count
        for event in fresh where channelID == nil || event.channel == channelID {
            describeChainEvent(event)
        }
    }

    private func name(of seat: ParticipantIndex) -> String { drill.peers[Int(seat.rawValue)].name }

    private func describeChainEvent(_ event: ChainEvent) {
        let at = event.time.seconds
        switch event.kind {
        case let .registered(version, deadline, by):
            // A higher registration inside the window is a refutation of the one before.
            if let stale = registered, stale < version {
                note(.chain, from: name(of: by), to: "chain", "refuted stale version \(stale) with version \(version)",
                     emphasis: true, at: at)
            } else {
                note(.chain, from: name(of: by), to: "chain", "registered version \(version) (window until t=\(deadline.seconds))", at: at)
            }
            registered = version
        case let .progressed(version, deadline, mover):
            note(.chain, from: name(of: mover), to: "chain", "progressed to version \(version) (window until t=\(deadline.seconds))", at: at)
        case let .concluded(version, allocation):
            let shares = drill.peers.enumerated().map { "\($0.element.name) \(allocation.balances[$0.offset])" }
            note(.chain, from: "chain", "concluded at version \(version): \(shares.joined(separator: ", "))", at: at)
        case let .withdrawn(participant, amount):
            note(.chain, from: "chain", to: name(of: participant), "paid out \(amount)", at: at)
        case let .reclaimed(participant, amount):
            note(.chain, from: "chain", to: name(of: participant), "deposit of \(amount) reclaimed", at: at)
        case .deposited, .funded:
            break
        }
    }

    private func describeNodeEvent(_ event: ControlEvent, of peer: String) {
        switch event.event {
        case .exitStarted:
            note(.note, from: peer, "watcher exits on chain with version \(event.version.map(String.init) ?? "?") (\(event.reason ?? ""))",
                 emphasis: true)
        case .peerSilent:
            note(.note, from: peer, "the other peer did not answer in time")
        default:
            break
        }
    }

    // MARK: - Steps

    private func perform(_ action: Drill.Action) async throws -> Outcome {
        var outcome = Outcome()
        func answer(_ node: NodeChild, _ command: String, timeout: Duration = .seconds(90)) async throws -> ControlResponse? {
            let reply = try await node.command(command, timeout: timeout)
            if reply.ok { return reply }
            outcome.refused = true
            outcome.error = reply.error ?? "refused"
            return nil
        }
        switch action {
        case let .pay(from, amount, count):
            let to = drill.other(than: from) ?? "?"
            let reply = try await answer(try node(from), "pay \(channel) \(amount) \(count)",
                                         timeout: .seconds(90) + .milliseconds(count * 20))
            let version = reply?.version.map { ", version \($0)" } ?? ""
            note(.message, from: from, to: to, "pay \(amount)\(count > 1 ? " ×\(count)" : "")\(version)")
            if let error = outcome.error { note(.note, from: from, "payment refused: \(error)", emphasis: true) }
            outcome.detail = "paid \(amount)\(count > 1 ? " × \(count)" : "")\(version)"
        case let .keep(peer, label):
            if let reply = try await answer(try node(peer), "state \(channel)"), let state = reply.state {
                kept[label] = state
                note(.note, from: peer, "keeps version \(reply.version.map(String.init) ?? "?") as `\(label)`")
                outcome.detail = "kept version \(reply.version.map(String.init) ?? "?")"
            }
        case let .register(peer, reference):
            let state: String
            switch reference {
            case .latest: state = "latest"
            case let .label(label):
                if let saved = kept[label] {
                    state = saved
                } else if let holder = heldBy[label] {
                    // A final state the holder countersigned in secret (`hold-final`).
                    guard let reply = try await answer(try node(holder), "held \(channel)"),
                        let saved = reply.state
                    else { throw DrillAbort("\(holder) holds no secretly countersigned final state for `\(label)`") }
                    kept[label] = saved
                    state = saved
                } else {
                    throw DrillAbort("no state kept as \(label)")
                }
            }
            // A kept (older) state is registered as a cheater would: the peer's own watcher
            // stands down, so the other peer's watcher is the one the drill tests.
            let command = reference == .latest ? "register" : "cheat"
            let reply = try await answer(try node(peer), "\(command) \(channel) \(state)")
            let what = reply?.version.map { "version \($0)" } ?? Self.label(reference)
            note(.chain, from: peer, to: "chain", "submits \(what)" + (outcome.error.map { " — refused: \($0)" } ?? ""),
                 emphasis: reference != .latest)
            outcome.detail = "submitted \(what)"
        case let .close(by):
            let closer = by ?? drill.peers[0].name
            note(.message, from: closer, to: drill.other(than: closer), "cooperative close")
            if let reply = try await answer(try node(closer), "close \(channel)") {
                outcome.detail = "closed at version \(reply.version.map(String.init) ?? "?")"
            }
        case let .dispute(peer):
            _ = try await answer(try node(peer), "dispute \(channel)")
            note(.note, from: peer, "asks its watcher to exit on chain")
        case let .silence(peer):
            _ = try await answer(try node(peer), "silence")
            note(.note, from: peer, "goes silent (drops everything, sends nothing)", emphasis: true)
        case let .wake(peer):
            _ = try await answer(try node(peer), "wake")
            note(.note, from: peer, "answers again")
        case .disconnect:
            for peer in drill.peers { _ = try await answer(try node(peer.name), "disconnect") }
            note(.note, from: drill.peers[0].name, to: drill.peers[1].name, "connection cut")
        case .reconnect:
            for peer in drill.peers { _ = try await answer(try node(peer.name), "reconnect") }
            note(.note, from: drill.peers[0].name, to: drill.peers[1].name, "connection allowed again")
        case let .crash(peer):
            try node(peer).crash()
            note(.note, from: peer, DrillHTML.crashNote, emphasis: true)
        case let .restart(peer):
            try await node(peer).restart()
            note(.note, from: peer, DrillHTML.restartNote)
        case let .advance(seconds):
            do { chainTime = try await advanceChain(seconds) } catch {
                throw DrillAbort("advancing chain time failed: \(error)")
            }
            note(.time, from: "chain", "+\(seconds) s (chain time \(chainTime))")
            // Let the watchers see the new time before the next step.
            try await Task.sleep(for: .milliseconds(200))
        case let .tamper(from, kind):
            try await tamper(from: from, kind: kind, outcome: &outcome, answer: answer)
        case let .holdFinal(peer, label):
            _ = try await answer(try node(peer), "hold-finals on")
            heldBy[label] = peer
            note(.note, from: peer, "will countersign the next final state in secret and answer \"declined\"", emphasis: true)
        case let .move(peer, cell):
            let to = drill.other(than: peer) ?? "?"
            let reply = try await answer(try node(peer), "move \(channel) \(cell)")
            let version = reply?.version.map { ", version \($0)" } ?? ""
            note(.message, from: peer, to: to, "marks cell \(cell)\(version)")
            outcome.detail = "marked cell \(cell)\(version)"
        case let .progressFinal(peer):
            _ = try await answer(try node(peer), "progress-final \(channel)")
            note(.chain, from: peer, to: "chain", "progresses to a final copy of the registered state"
                 + (outcome.error.map { " — refused: \($0)" } ?? ""), emphasis: true)
        case .expect:
            break
        }
        return outcome
    }

    /// Sends the tampered update, then waits for the receiver to say no (an `error` or
    /// `rejected` event). Refused = the receiver reacted; `changedState` is judged after.
    private func tamper(
        from: String, kind: String, outcome: inout Outcome,
        answer: (NodeChild, String, Duration) async throws -> ControlResponse?
    ) async throws {
        let receiverName = drill.other(than: from) ?? ""
        let receiver = try node(receiverName)
        receiver.collectEvents()
        let seen = receiver.events.count
        let reply = try await answer(try node(from), "tamper \(channel) \(kind)", .seconds(30))
        note(.message, from: from, to: receiverName,
             "tampered update (\(kind))" + (reply?.version.map { ", version \($0)" } ?? ""), emphasis: true)
        guard outcome.error == nil else { return }
        let end = ContinuousClock.now + .seconds(5)
        var reaction: String?
        while reaction == nil, ContinuousClock.now < end {
            receiver.collectEvents()
            reaction = receiver.events.dropFirst(seen).first { [.error, .rejected].contains($0.event) }
                .map { event in event.error ?? event.reason ?? "rejected" }
            if reaction == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        guard let reaction else {
            outcome.detail = "\(receiverName) did not react"
            return
        }
        outcome.refused = true
        outcome.error = "\(receiverName) rejected it: \(reaction)"
        note(.note, from: receiverName, "rejects it: \(reaction)")
        // The tamperer drops the session to resynchronise versions; wait for both to be back.
        try? await Task.sleep(for: .milliseconds(400))
    }

    private static func label(_ reference: Drill.StateReference) -> String {
        switch reference {
        case .latest: "latest"
        case let .label(label): label
        }
    }

    // MARK: - Expectations

    /// Each running peer's view of the channel.
    private func views() async throws -> [String: PeerView] {
        var result: [String: PeerView] = [:]
        for peer in drill.peers {
            guard let node = nodes[peer.name], node.isRunning else { continue }
            if let view = try await view(of: peer.name, node) { result[peer.name] = view }
        }
        return result
    }

    private func view(of name: String, _ node: NodeChild) async throws -> PeerView? {
        let status = try await node.command("status")
        guard let entry = status.channels?.first(where: { $0.channel == channel }),
            let me = UInt64(exactly: entry.balances.me.value), let other = UInt64(exactly: entry.balances.peer.value)
        else { return nil }
        let version = entry.version
        let seat = drill.seat(of: name) ?? .first
        return PeerView(version: version, balances: seat == .first ? [me, other] : [other, me])
    }

    private func check(_ expectation: Drill.Expectation, previous: Outcome?) async -> (Bool, String) {
        var problems: [String] = []
        let wasRefused = previous.map { $0.refused || $0.error != nil } ?? false
        if let rejected = expectation.rejected {
            if rejected {
                if !wasRefused { problems.append("the previous step was not refused (\(previous?.detail ?? "no previous step"))") }
                if previous?.changedState == true { problems.append("the previous step was refused but state changed") }
            } else if wasRefused {
                problems.append("the previous step was refused: \(previous?.error ?? "")")
            }
        }
        if let text = expectation.error {
            let message = previous?.error ?? ""
            if !message.localizedCaseInsensitiveContains(text) {
                problems.append(message.isEmpty ? "the previous step had no error (expected one containing “\(text)”)"
                    : "the error was “\(message)”, which does not contain “\(text)”")
            }
        }
        guard problems.isEmpty else { return (false, problems.joined(separator: "; ")) }
        let aboutTheWorld = expectation.chainVersion != nil || expectation.chainPhase != nil || expectation.payout != nil
            || expectation.peer != nil
        guard aboutTheWorld else { return (true, "held") }
        // Watchers act on their own; give them time before judging.
        let end = ContinuousClock.now + options.settleTimeout
        while true {
            collectAll()
            let failures: [String]
            do { failures = try await worldProblems(expectation) } catch { failures = ["\(error)"] }
            if failures.isEmpty { return (true, "held") }
            if ContinuousClock.now >= end { return (false, failures.joined(separator: "; ")) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// What the chain shows for the channel, as plain values.
    private struct ChainView {
        var registeredVersion: UInt64?
        var phase: String
        var payout: Allocation?
    }

    private func chainView(_ id: ChannelID) async throws -> ChainView {
        guard let chain else { throw DrillAbort("no chain") }
        guard let onChain = try await chain.channel(id) else { return ChainView(registeredVersion: nil, phase: "none") }
        return ChainView(
            registeredVersion: onChain.registeredVersion, phase: onChain.phase.rawValue, payout: onChain.concludedAllocation)
    }

    private func worldProblems(_ expectation: Drill.Expectation) async throws -> [String] {
        var problems: [String] = []
        guard let id = channelID else { return ["no channel"] }
        let onChain = try await chainView(id)
        if let version = expectation.chainVersion, onChain.registeredVersion != version {
            problems.append("chain version is \(onChain.registeredVersion.map(String.init) ?? "none"), expected \(version)")
        }
        if let phase = expectation.chainPhase, onChain.phase != phase {
            problems.append("chain phase is \(onChain.phase), expected \(phase)")
        }
        if let payout = expectation.payout {
            if let allocation = onChain.payout {
                for (peer, amount) in payout.sorted(by: { $0.key < $1.key }) {
                    let seat = drill.seat(of: peer) ?? .first
                    if allocation[seat] != Amount(amount) { problems.append("\(peer) is paid \(allocation[seat]), expected \(amount)") }
                }
            } else {
                problems.append("the channel is not settled on chain yet (phase \(onChain.phase))")
            }
        }
        if let peer = expectation.peer {
            guard let node = nodes[peer.name], node.isRunning else { return problems + ["\(peer.name) is not running"] }
            guard let view = try await view(of: peer.name, node) else { return problems + ["\(peer.name) has no such channel"] }
            if let version = peer.version, view.version != version {
                problems.append("\(peer.name) is at version \(view.version), expected \(version)")
            }
            for (name, amount) in (peer.balances ?? [:]).sorted(by: { $0.key < $1.key }) {
                let actual = view.balances[Int((drill.seat(of: name) ?? .first).rawValue)]
                if actual != amount { problems.append("\(peer.name) sees \(name) with \(actual), expected \(amount)") }
            }
        }
        return problems
    }

    private func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DrillAbort("timed out waiting for \(what)")
    }

    // MARK: - Text

    static func describe(_ action: Drill.Action) -> String {
        switch action {
        case let .pay(from, amount, count): "pay {from: \(from), amount: \(amount)\(count > 1 ? ", count: \(count)" : "")}"
        case let .keep(peer, label): "keep {peer: \(peer), as: \(label)}"
        case let .register(peer, state): "register {peer: \(peer), state: \(label(state))}"
        case let .close(by): by.map { "close {peer: \($0)}" } ?? "close"
        case let .dispute(peer): "dispute {peer: \(peer)}"
        case let .silence(peer): "silence \(peer)"
        case let .wake(peer): "wake \(peer)"
        case .disconnect: "disconnect"
        case .reconnect: "reconnect"
        case let .crash(peer): "crash \(peer)"
        case let .restart(peer): "restart \(peer)"
        case let .advance(seconds): "advance \(seconds)"
        case let .tamper(from, kind): "tamper {from: \(from), kind: \(kind)}"
        case let .holdFinal(peer, label): "hold-final {peer: \(peer), as: \(label)}"
        case let .move(peer, cell): "move {peer: \(peer), cell: \(cell)}"
        case let .progressFinal(peer): "progress-final \(peer)"
        case let .expect(expectation): "expect " + describe(expectation)
        }
    }

    static func describe(_ expectation: Drill.Expectation) -> String {
        func amounts(_ map: [String: UInt64]) -> String {
            "{" + map.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
        var parts: [String] = []
        if expectation.chainVersion != nil || expectation.chainPhase != nil {
            let fields = [expectation.chainVersion.map { "version: \($0)" }, expectation.chainPhase.map { "phase: \($0)" }]
            parts.append("chain: {\(fields.compactMap { $0 }.joined(separator: ", "))}")
        }
        if let payout = expectation.payout { parts.append("payout: \(amounts(payout))") }
        if let peer = expectation.peer {
            var fields = ["name: \(peer.name)"]
            if let version = peer.version { fields.append("version: \(version)") }
            if let balances = peer.balances { fields.append("balances: \(amounts(balances))") }
            parts.append("peer: {\(fields.joined(separator: ", "))}")
        }
        if let rejected = expectation.rejected { parts.append("rejected: \(rejected)") }
        if let error = expectation.error { parts.append("error: \(error)") }
        return "{\(parts.joined(separator: ", "))}"
    }
}
