import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyJournal
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire
import Synchronization

/// One run of the demo; `say` narrates unless `--json`.
package struct DemoRun {
    let options: DemoOptions

    package init(options: DemoOptions) {
        self.options = options
    }

    private func say(_ line: String) {
        if !options.json { print(line) }
    }

    package func run() async throws -> DemoResult {
        let root = try journalRoot()
        let aliceDirectory = root + "/alice"
        let bobDirectory = root + "/bob"
        let loop = try EventLoop(name: "parley-demo")
        defer { loop.shutdown() }
        let aliceKey = SigningKey()
        let bobKey = SigningKey()
        let chain = try await DemoChain.make(options.devchain, evm: options.chain == .evm, keys: [aliceKey, bobKey], loop: loop)
        defer { Task { await chain.close() } }
        say("Chain: \(chain.name). Journals: \(root)")
        for key in [aliceKey, bobKey] {
            try await chain.adapter(for: key).mint(options.deposit, to: key.publicKey)
        }
        let policy = NodePolicy(
            watcher: WatcherPolicy(clockPollInterval: .milliseconds(50), retryDelay: .milliseconds(100)),
            proposalTimeout: .milliseconds(Int(options.proposalTimeout * 1000)),
            challengeDuration: options.challenge)
        let logger = Logger(label: "parley.demo") { _ in SwiftLogNoOpLogHandler() }
        let loopback = SocketAddress.loopbackIPv4(port: 0)
        let bob = try await Node(
            identity: bobKey, listen: loopback, journal: bobDirectory, settlement: chain.adapter(for: bobKey),
            policy: policy, logger: logger, loop: loop)
        var alice = try await Node(
            identity: aliceKey, listen: loopback, journal: aliceDirectory, settlement: chain.adapter(for: aliceKey),
            policy: policy, logger: logger, loop: loop)
        let bobLog = EventLog(bob)
        var aliceLog = EventLog(alice)
        guard let bobAddress = await bob.listeningAddress else { throw DemoFailure("Bob is not listening") }
        say("Alice \(aliceKey.publicKey.shortID) and Bob \(bobKey.publicKey.shortID) (listening on \(bobAddress))")

        let channel = try await alice.open(
            with: bobKey.publicKey, at: bobAddress, deposit: options.deposit, theirs: options.deposit,
            peerSigner: chain.peerSigner(bobKey))
        say("Channel \(channel.id.shortID) open and funded: \(options.deposit) each, challenge window \(options.challenge)s")

        // Payments.
        let silentAt = options.dispute == .silent ? options.payments / 2 : options.payments
        let keepAt = max(1, options.payments / 10)
        var stale: SignedState?
        var latencies = LatencyRecorder()
        let done = Atomic<Int>(0)
        let total = options.payments
        let progress = Task {
            await Terminal.showProgressLine(every: .milliseconds(200)) {
                let count = done.load(ordering: .relaxed)
                return count == 0 ? nil : "  payments: \(count)/\(total)"
            }
        }
        let started = ContinuousClock.now
        var lastCommit = started
        var unanswered: NodeError?
        for index in 1...max(options.payments, 1) where options.payments > 0 {
            if options.dispute == .silent, index == silentAt + 1 {
                bob.setSilent(true)
            }
            let before = ContinuousClock.now
            do { try await channel.pay(1) } catch {
                unanswered = error
                break
            }
            lastCommit = ContinuousClock.now
            latencies.record(lastCommit - before)
            done.store(index, ordering: .relaxed)
            if index == keepAt, options.dispute == .cheat { stale = try channel.status.latest }
        }
        let seconds = Reporting.seconds(lastCommit - started)
        progress.cancel()
        await progress.value
        let committed = latencies.count
        let signedVersion = try channel.status.latest.version
        let perSecond = seconds > 0 ? Double(committed) / seconds : 0
        say("\(Reporting.plural(committed, "payment")) in \(String(format: "%.2f", seconds)) s: \(Int(perSecond)) updates/s, "
            + "p50 \(Int(latencies.micros(at: 0.50))) µs, p99 \(Int(latencies.micros(at: 0.99))) µs; latest fully-signed version \(signedVersion)")

        var staleVersion: UInt64?
        switch options.dispute {
        case .none:
            say("Closing cooperatively…")
            _ = try await channel.close()
            try await bob.channel(channel.id)?.waitUntilClosed()
        case .silent:
            guard let unanswered else { throw DemoFailure("Bob went silent but Alice's payment still went through") }
            say("Bob went silent after payment \(silentAt): \(unanswered)")
            let (version, _) = try await aliceLog.wait(for: "Alice's watcher to exit on chain") { event -> (UInt64, ExitReason)? in
                if case let .exitStarted(_, version, reason) = event { return (version, reason) }
                return nil
            }
            say("Alice's watcher registered version \(version) on chain; waiting out the \(options.challenge)s window")
            try await chain.pass(options.challenge + 1)
            try await channel.waitUntilClosed()
            try await bob.channel(channel.id)?.waitUntilClosed()
        case .cheat:
            guard let old = stale else { throw DemoFailure("no old state was kept") }
            staleVersion = old.version
            say("Alice goes offline and registers old version \(old.version) (she had \(old.state.allocation[.first]), now \(try channel.status.myBalance))")
            await alice.shutDown()
            _ = try await chain.adapter(for: aliceKey).register(old)
            let (staleSeen, with) = try await bobLog.wait(for: "Bob's watcher to refute") { event -> (UInt64, UInt64)? in
                if case let .refuted(_, stale, with) = event { return (stale, with) }
                return nil
            }
            say("Bob's watcher refuted version \(staleSeen) with version \(with); waiting out the \(options.challenge)s window")
            try await chain.pass(options.challenge + 1)
            try await bob.channel(channel.id)?.waitUntilClosed()
            say("Alice's node restarts from its journal to collect her share")
            alice = try await Node(
                identity: aliceKey, listen: loopback, journal: aliceDirectory, settlement: chain.adapter(for: aliceKey),
                policy: policy, logger: logger, loop: loop)
            aliceLog = EventLog(alice)
            try await alice.channel(channel.id)?.waitUntilClosed()
        }
        let settledVersion = try await bobLog.wait(for: "the chain to conclude") { event -> UInt64? in
            if case let .concluded(_, version, _) = event { return version }
            return nil
        }
        // The newest state either side holds fully signed (after a close: the final state).
        let bobVersion = try await bob.channel(channel.id)?.status.latest.version ?? 0
        let aliceVersion = try await alice.channel(channel.id)?.status.latest.version ?? 0
        let finalVersion = max(bobVersion, aliceVersion)
        let payout = DemoResult.Payout(
            alice: try await chain.adapter(for: aliceKey).balance(of: aliceKey.publicKey),
            bob: try await chain.adapter(for: bobKey).balance(of: bobKey.publicKey))
        await alice.shutDown()
        await bob.shutDown()
        say("Settled on chain at version \(settledVersion). Payouts: Alice \(payout.alice), Bob \(payout.bob) "
            + "(sum \(payout.alice + payout.bob) of \(2 * options.deposit) deposited)")
        say("Check the journals: parley journal verify \(aliceDirectory)")
        return DemoResult(
            payments: committed, seconds: Reporting.rounded(seconds, digits: 3), updatesPerSecond: Reporting.rounded(perSecond, digits: 1),
            p50Micros: Reporting.rounded(latencies.micros(at: 0.50), digits: 1), p99Micros: Reporting.rounded(latencies.micros(at: 0.99), digits: 1),
            finalVersion: finalVersion, settledVersion: settledVersion, payout: payout, deposits: options.deposit,
            dispute: options.dispute, staleVersion: staleVersion, chain: chain.name,
            journals: ["alice": aliceDirectory, "bob": bobDirectory], durability: policy.durability.rawValue,
            build: Reporting.buildConfiguration)
    }

    /// `--data`, checked to hold no journals yet, or a fresh temporary directory.
    private func journalRoot() throws -> String {
        guard let data = options.data else {
            var template = Array("/tmp/parley-demo-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw DemoFailure("cannot make a temporary directory") }
            return String(cString: made)
        }
        for name in ["alice", "bob"] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: data + "/" + name)) ?? []
            if !entries.isEmpty {
                throw DemoFailure("\(data)/\(name) already holds files; give --data a fresh directory")
            }
        }
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        return data
    }
}
