import ArgumentParser
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

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Two nodes, one payment channel, thousands of payments, settled on chain.",
        discussion: """
            Starts a chain (the embedded LocalChain, a running `parley devchain`, or with \
            --chain evm the local EVM with Parley's Vyper adjudicator), and two \
            nodes, Alice and Bob, in this process, talking over real loopback TCP through \
            libuv with encrypted sessions. Alice opens a channel (both deposit), streams \
            payments of 1 unit to Bob — every one signed by both, every signature fsync'd to \
            each side's journal first — then they close cooperatively on chain, where the final \
            state pays both.

            --dispute silent: Bob stops answering halfway; Alice's proposal times out and her \
            watcher exits on chain with the latest fully-signed state.
            --dispute cheat: after the payments Alice goes offline and registers an old state \
            in which she had more; Bob's watcher refutes it with the latest state before the \
            window closes. Alice's node comes back from its journal and collects what she is owed.

            Examples:
              parley demo
              parley demo --payments 10000 --json
              parley demo --dispute cheat --data /tmp/demo && parley journal verify /tmp/demo/bob
              parley demo --chain evm --dispute cheat      (the local EVM: `make evm-env` first)
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain --manual-time &
              parley demo --devchain 127.0.0.1:7545
            """)

    @Option(name: .long, help: "Payments of 1 unit from Alice to Bob.")
    var payments = 10_000

    @Option(name: .long, help: "What each side deposits.")
    var deposit: Amount = 1_000_000

    @Option(name: .long, help: "none, silent (Bob stops answering) or cheat (Alice registers an old state).")
    var dispute: DemoDispute = .none

    @Option(name: .long, help: "Use the `parley devchain` at HOST:PORT instead of the embedded chain.")
    var devchain: String?

    @Option(
        name: .long,
        help: "embedded (default), or evm: start the local EVM (`make evm-env`), deploy the Vyper adjudicator and settle there, with Ethereum-backend channels.")
    var chain: DemoChainKind = .embedded

    @Option(name: .long, help: "Keep the journals in DIR/alice and DIR/bob (must not hold journals yet).")
    var data: String?

    @Option(name: .long, help: "Challenge window in seconds of chain time.")
    var challenge: UInt64 = 60

    @Option(name: .long, help: "How long Alice waits for an answer before she counts Bob as silent (seconds).")
    var proposalTimeout = 2.0

    @Flag(
        name: .long,
        help: #"Print one JSON object at the end: {"payments", "seconds", "updatesPerSecond", "p50Micros", "p99Micros", "finalVersion", "settledVersion", "payout": {"alice", "bob"}, "dispute", "staleVersion", ...}."#)
    var json = false

    func validate() throws {
        guard payments >= 0, payments <= 100_000_000 else { throw ValidationError("--payments must be 0...100000000.") }
        guard deposit > 0 else { throw ValidationError("--deposit must be positive.") }
        guard Amount(payments) <= deposit else { throw ValidationError("--payments cannot exceed --deposit (Alice pays 1 unit each).") }
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw ValidationError("--challenge must be \(ChannelParams.challengeDurationRange) seconds.")
        }
        guard proposalTimeout > 0, proposalTimeout <= 600 else { throw ValidationError("--proposal-timeout must be in (0, 600].") }
        if dispute != .none, payments < 2 { throw ValidationError("--dispute \(dispute.rawValue) needs at least 2 payments.") }
        if chain == .evm, devchain != nil { throw ValidationError("--chain evm and --devchain are two different chains: pick one.") }
    }

    func run() async throws {
        let result: DemoResult
        do {
            result = try await DemoRun(options: self).run()
        } catch let error as DemoFailure {
            throw failure("demo", error.description)
        } catch {
            throw failure("demo", "\(error)")
        }
        if json { try printJSON(result) }
    }
}

enum DemoDispute: String, ExpressibleByArgument, CaseIterable, Codable {
    case none, silent, cheat
}

struct DemoResult: Encodable {
    struct Payout: Encodable {
        var alice: Amount
        var bob: Amount
    }

    var payments: Int
    var seconds: Double
    var updatesPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    var finalVersion: UInt64
    var settledVersion: UInt64
    var payout: Payout
    var deposits: Amount
    var dispute: DemoDispute
    var staleVersion: UInt64?
    var chain: String
    var journals: [String: String]
    var durability: String
    var build: String

    private enum CodingKeys: String, CodingKey {
        case payments, seconds, updatesPerSecond, p50Micros, p99Micros, finalVersion, settledVersion, payout, deposits
        case dispute, staleVersion, chain, journals, durability, build
    }

    /// Written by hand so `staleVersion` appears as `null` outside cheat mode.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(payments, forKey: .payments)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(updatesPerSecond, forKey: .updatesPerSecond)
        try container.encode(p50Micros, forKey: .p50Micros)
        try container.encode(p99Micros, forKey: .p99Micros)
        try container.encode(finalVersion, forKey: .finalVersion)
        try container.encode(settledVersion, forKey: .settledVersion)
        try container.encode(payout, forKey: .payout)
        try container.encode(deposits, forKey: .deposits)
        try container.encode(dispute, forKey: .dispute)
        try container.encode(staleVersion, forKey: .staleVersion)
        try container.encode(chain, forKey: .chain)
        try container.encode(journals, forKey: .journals)
        try container.encode(durability, forKey: .durability)
        try container.encode(build, forKey: .build)
    }
}

struct DemoFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Collects one node's events so the demo can wait for them.
final class EventLog: Sendable {
    private let events = Locked<[NodeEvent]>([])

    init(_ node: Node) {
        let stream = node.events
        Task { for await event in stream { self.events.withLock { $0.append(event) } } }
    }

    func first<T>(_ match: (NodeEvent) -> T?) -> T? {
        let all = events.withLock { $0 }
        return all.lazy.compactMap(match).first
    }

    /// Waits up to `timeout` for an event `match` accepts.
    func wait<T>(for what: String, timeout: Duration = .seconds(30), _ match: @escaping (NodeEvent) -> T?) async throws -> T {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let found = first(match) { return found }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw DemoFailure("timed out after \(timeout) waiting for \(what)")
    }
}

/// One run of the demo; `say` narrates unless `--json`.
struct DemoRun {
    let options: DemoCommand

    private func say(_ line: String) {
        if !options.json { print(line) }
    }

    func run() async throws -> DemoResult {
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

/// Which chain `parley demo` settles on when no devchain is named.
enum DemoChainKind: String, ExpressibleByArgument, CaseIterable {
    case embedded
    case evm
}

/// The embedded chain, a devchain daemon, or the local EVM, with one adapter per key.
struct DemoChain: Sendable {
    let name: String
    private let adapters: [PublicKey: any SettlementAdapter & DevFaucet]
    private let local: LocalChain?
    private let timekeeper: DevchainClient?
    private let evm: LocalEVM?

    static func make(_ devchain: String?, evm: Bool = false, keys: [SigningKey], loop: EventLoop) async throws -> DemoChain {
        if evm { return try await makeEVM(keys: keys) }
        guard let devchain else {
            let chain = LocalChain()
            return DemoChain(
                name: "embedded LocalChain", adapters: Dictionary(uniqueKeysWithValues: keys.map { ($0.publicKey, chain.adapter(for: $0.publicKey)) }),
                local: chain, timekeeper: nil, evm: nil)
        }
        let address = devchain.hasPrefix("devchain://") ? devchain : "devchain://" + devchain
        var adapters: [PublicKey: any SettlementAdapter & DevFaucet] = [:]
        for key in keys {
            do { adapters[key.publicKey] = try await DevchainClient.connect(to: address, identity: key, loop: loop) } catch {
                throw DemoFailure("cannot reach the devchain at \(devchain): \(error)")
            }
        }
        let timekeeper = try await DevchainClient.connect(to: address, identity: SigningKey(), loop: loop)
        return DemoChain(name: "devchain at \(devchain)", adapters: adapters, local: nil, timekeeper: timekeeper, evm: nil)
    }

    /// The local EVM with the adjudicator holding the development token; each key's
    /// settlement address gets ether for gas.
    private static func makeEVM(keys: [SigningKey]) async throws -> DemoChain {
        let evm: LocalEVM
        do { evm = try LocalEVM.start() } catch { throw DemoFailure("\(error)") }
        guard let deployer = evm.accounts.first else { throw DemoFailure("the local EVM has no funded accounts") }
        var options = EthereumChainOptions()
        options.pollInterval = .milliseconds(50)
        let deployment = try await EthereumDeployer.deploy(endpoint: evm.endpoint, key: deployer.key, asset: .devToken, options: options)
        options.fromBlock = deployment.block
        let chain = EthereumChain(endpoint: evm.endpoint, adjudicator: deployment.adjudicator, options: options)
        var adapters: [PublicKey: any SettlementAdapter & DevFaucet] = [:]
        for key in keys {
            try await evm.setBalance(key.settlementKey.address, wei: Amount(UInt128(1_000) * 1_000_000_000_000_000_000))
            adapters[key.publicKey] = chain.adapter(for: key.publicKey, key: key.settlementKey)
        }
        return DemoChain(
            name: "local EVM at \(evm.endpoint.absoluteString) (adjudicator \(deployment.adjudicator), development token)",
            adapters: adapters, local: nil, timekeeper: nil, evm: evm)
    }

    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet {
        adapters[key.publicKey]!  // every key the demo uses was given to `make`
    }

    /// The peer's settlement address on chains whose channels sign with Ethereum keys.
    func peerSigner(_ key: SigningKey) -> SettlementAddress? {
        evm == nil ? nil : key.settlementKey.settlementAddress
    }

    /// Lets `seconds` of chain time pass: at once on the embedded chain, a manual-time
    /// devchain or the local EVM, by waiting on a devchain whose clock follows the wall clock.
    func pass(_ seconds: UInt64) async throws {
        if let local {
            local.advance(by: seconds)
        } else if let evm {
            try await evm.increaseTime(seconds)
        } else if let timekeeper {
            do { _ = try await timekeeper.advance(by: seconds) } catch {
                try await Task.sleep(for: .seconds(Int(seconds)))
            }
        }
    }

    func close() async {
        for adapter in adapters.values { await (adapter as? DevchainClient)?.close() }
        await timekeeper?.close()
        evm?.stop()
    }
}
