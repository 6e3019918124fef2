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

/// One drill, start to finish.
final class DrillRun: @unchecked Sendable {
    let drill: Drill
    let options: DrillRunner
    var timeline: [TimelineEntry] = []
    var steps: [DrillResult.StepResult] = []
    var nodes: [String: NodeChild] = [:]
    var devchain: PipedChild?
    var evm: LocalEVM?
    var chain: (any SettlementAdapter)?
    var closeChain: @Sendable () async -> Void = {}
    var chainFollower: Task<Void, Never>?
    /// Moves chain time and answers the new time.
    var advanceChain: @Sendable (UInt64) async throws -> UInt64 = { _ in throw DrillAbort("no chain") }
    var channel = ""
    var channelID: ChannelID?
    var kept: [String: String] = [:]
    /// Labels of final states a peer countersigned in secret (`hold-final`), by holder.
    var heldBy: [String: String] = [:]
    var chainTime: UInt64 = 0
    let chainEvents = EventBox()
    var chainCursor = 0
    /// The version the chain holds registered, to tell a refutation from a first registration.
    var registered: UInt64?
    var root = ""

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

    func record(_ step: Drill.Step, ok: Bool, detail: String) {
        steps.append(DrillResult.StepResult(step: Self.describe(step.action), line: step.line, ok: ok, detail: detail))
    }

    func note(
        _ kind: TimelineEntry.Kind, from: String, to: String? = nil, _ text: String, emphasis: Bool = false,
        at time: UInt64? = nil
    ) {
        let entry = TimelineEntry(time: time ?? chainTime, kind: kind, from: from, to: to, text: text, emphasis: emphasis)
        timeline.append(entry)
        options.onEntry(entry)
    }

    // MARK: - Set-up and tear-down

    func setUp() async throws {
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
    func startDevchain(_ random: inout SeededRandom) async throws -> [String] {
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
    func startEVM(_ random: inout SeededRandom) async throws -> [String] {
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

    func tearDown() async {
        for node in nodes.values where node.isRunning {
            _ = try? await node.command("quit", timeout: .seconds(10))
            await node.child.stop(saying: nil, timeout: .seconds(5))
        }
        chainFollower?.cancel()
        await closeChain()
        await devchain?.kill(SIGTERM)
        if !options.keepFiles, !root.isEmpty { try? FileManager.default.removeItem(atPath: root) }
        if options.keepFiles, !root.isEmpty { note(.note, from: "drill", "files kept in \(root)") }
    }

    func node(_ name: String) throws -> NodeChild {
        guard let node = nodes[name] else { throw DrillAbort("no peer named \(name)") }
        return node
    }

    static func key(_ random: inout SeededRandom) throws -> SigningKey {
        var seed: [UInt8] = []
        for _ in 0..<4 { withUnsafeBytes(of: random.next()) { seed += $0 } }
        do { return try SigningKey(seed: seed) } catch { throw DrillAbort("key derivation: \(error)") }
    }

    /// FNV-1a, so two drills run with one seed still get different keys.
    static func nameHash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

}
