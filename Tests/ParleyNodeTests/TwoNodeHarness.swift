import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyGames
import ParleyJournal
import ParleySettlement
import ParleyTestSupport
import ParleyTransport
import ParleyWire
import Synchronization
import Testing

@testable import ParleyNode

/// Short timers so scenarios run in milliseconds of wall time; chain time is virtual. The
/// funding timeout stays long: both deposits must land within it even on a loaded machine
/// (the one test about it uses `shortFundingPolicy`).
let fastPolicy = WatcherPolicy(
    disconnectGrace: .milliseconds(100), fundingTimeout: .seconds(20),
    clockPollInterval: .milliseconds(10), retryDelay: .milliseconds(20))

/// `fastPolicy` with a funding timeout short enough to wait out in a test.
let shortFundingPolicy = WatcherPolicy(
    disconnectGrace: .milliseconds(100), fundingTimeout: .milliseconds(300),
    clockPollInterval: .milliseconds(10), retryDelay: .milliseconds(20))

/// A fresh directory under /tmp, removed by `removeDirectory`.
func makeTemporaryDirectory(_ prefix: String = "parley-node-test") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
    return String(cString: made)
}

/// The chain a scenario runs on: the embedded one, or a real `parley devchain` subprocess.
enum ChainBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case local
    case devchain

    var testDescription: String { rawValue }

    func make() throws -> any ScenarioChain {
        switch self {
        case .local: LocalScenarioChain()
        case .devchain: try DevchainScenarioChain()
        }
    }
}

/// What a scenario needs from a chain besides each node's adapter.
protocol ScenarioChain: Sendable {
    /// The adapter a node with `key` uses (one per key, shared by its watcher and the test).
    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet
    /// The chain's settlement domain: channels made by hand are bound to it.
    var domain: SettlementDomain { get }
    func advance(by seconds: UInt64) async throws
    /// Kills the chain without warning and starts it again on its data (devchain only).
    func crashAndRestart() async throws
    func shutDown() async
}

final class LocalScenarioChain: ScenarioChain {
    let chain = LocalChain(apps: [TicTacToe()])
    var domain: SettlementDomain { chain.domain }

    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet { chain.adapter(for: key.publicKey) }
    func advance(by seconds: UInt64) async throws { chain.advance(by: seconds) }
    func crashAndRestart() async throws {}
    func shutDown() async {}
}

/// `LocalChain` on a domain with an adjudicator address, so Ethereum-backend channels can
/// settle on it (their domain must name a contract).
final class LocalEthereumScenarioChain: ScenarioChain {
    let chain: LocalChain
    var domain: SettlementDomain { chain.domain }

    init() throws {
        chain = LocalChain(
            apps: [TicTacToe()], domain: try SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20)))
    }

    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet { chain.adapter(for: key.publicKey) }
    func advance(by seconds: UInt64) async throws { chain.advance(by: seconds) }
    func crashAndRestart() async throws {}
    func shutDown() async {}
}

/// A devchain daemon with manual time; clients redial by themselves when it restarts.
final class DevchainScenarioChain: ScenarioChain {
    private let daemon: Mutex<DevchainDaemon>
    private let clients = Mutex<[PublicKey: DevchainClient]>([:])
    private let timekeeper: DevchainClient
    private let loop: EventLoop

    init() throws {
        loop = try TestLoop.get()
        let started = try DevchainDaemon.start(directory: DevchainDaemon.temporaryDirectory())
        daemon = Mutex(started)
        timekeeper = DevchainClient(address: started.address, identity: SigningKey(), loop: loop)
    }

    private var address: SocketAddress { daemon.withLock { $0.address } }
    var domain: SettlementDomain { .devchainDefault }

    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet {
        let address = self.address
        return clients.withLock { clients in
            if let client = clients[key.publicKey] { return client }
            let client = DevchainClient(address: address, identity: key, loop: loop)
            clients[key.publicKey] = client
            return client
        }
    }

    func advance(by seconds: UInt64) async throws { _ = try await timekeeper.advance(by: seconds) }

    func crashAndRestart() async throws {
        let (directory, port) = daemon.withLock { daemon in
            daemon.stop(SIGKILL)
            return (daemon.directory, daemon.address.port)
        }
        let restarted = try DevchainDaemon.start(directory: directory, port: port)
        daemon.withLock { $0 = restarted }
    }

    func shutDown() async {
        let all = clients.withLock { Array($0.values) } + [timekeeper]
        for client in all { await client.close() }
        let directory = daemon.withLock { daemon in
            daemon.stop(SIGTERM)
            return daemon.directory
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// One side: key, journal, engine, chain adapter and watcher. Messages to the peer queue
/// in `outbox`; the harness moves them.
final class TestNode: @unchecked Sendable {
    let name: String
    let key: SigningKey
    let directory: String
    let adapter: any SettlementAdapter & DevFaucet
    private(set) var journal: Journal
    var engine: JournaledEngine?
    private(set) var watcher: Watcher
    private(set) var seen = WatcherLog()
    var outbox: [ChannelMessage] = []
    /// When set, this side drops everything it would send (a silent peer).
    var silent = false
    /// When set, the next `accept` this side would send is lost.
    var dropNextAccept = false
    /// Whether this node's watcher runs (a node a scenario keeps offline has none).
    private(set) var isWatching = false

    init(
        name: String, key: SigningKey, directory: String, chain: any ScenarioChain, policy: WatcherPolicy,
        wrap: (any SettlementAdapter & DevFaucet) -> any SettlementAdapter & DevFaucet = { $0 }
    ) throws {
        self.name = name
        self.key = key
        self.directory = directory
        adapter = wrap(chain.adapter(for: key))
        journal = try Journal(directory: directory)
        watcher = Watcher(identity: key.publicKey, adapter: adapter, journal: journal, policy: policy)
    }

    var latest: SignedState? { engine?.engine.latest }

    /// This node's account balance on chain.
    func account() async throws -> Amount { try await adapter.balance(of: key.publicKey) }

    func startWatching() async {
        isWatching = true
        seen.follow(watcher.events)
        await watcher.start()
    }

    /// Simulates a node restart: stops the watcher, closes and reopens the journal (recovery
    /// runs), restores the engine from it and starts a new watcher.
    func restart(policy: WatcherPolicy, watch: Bool = true) async throws {
        await watcher.stop()
        journal.close()
        journal = try Journal(directory: directory)
        if let record = journal.channels.values.first {
            engine = try JournaledEngine.restore(record, key: key, journal: journal)
        }
        watcher = Watcher(identity: key.publicKey, adapter: adapter, journal: journal, policy: policy)
        seen = WatcherLog()
        isWatching = false
        if watch { await startWatching() }
    }

    func shutDown() async {
        await watcher.stop()
        journal.close()
    }

    /// Performs effects as a node would; journal records are already durable.
    func perform(_ effects: [Effect]) async throws {
        for effect in effects {
            switch effect {
            case .journal, .notify, .scheduleRetry, .disconnect:
                break
            case let .send(message):
                if silent { continue }
                if case .accept = message, dropNextAccept {
                    dropNextAccept = false
                    continue
                }
                outbox.append(message)
            case let .decide(proposal):
                let me = engine?.engine.me ?? .second
                let decision: Decision = proposal.proposed.allocation[me] >= proposal.current.allocation[me]
                    ? .accept : .reject("that takes from me")
                try await input(.decided(version: proposal.proposed.version, decision))
            }
        }
    }

    func input(_ input: EngineInput) async throws {
        guard var engine else { return }
        let effects = try await engine.handle(input)
        self.engine = engine
        try await perform(effects)
    }
}

/// Collects a watcher's events for tests to wait on.
final class WatcherLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [WatcherEvent] = []

    func follow(_ stream: AsyncStream<WatcherEvent>) {
        Task { for await event in stream { self.lock.withLock { self.events.append(event) } } }
    }

    var all: [WatcherEvent] { lock.withLock { events } }

    func contains(_ predicate: (WatcherEvent) -> Bool) -> Bool { all.contains(where: predicate) }

    func count(_ predicate: (WatcherEvent) -> Bool) -> Int { all.filter(predicate).count }
}

/// Alice (first seat, the payer) and Bob on one `LocalChain`, each with a real fsync'd
/// journal and a watcher; channel messages move in memory when `deliver()` runs.
final class TwoNodes: @unchecked Sendable {
    static let challenge: UInt64 = 60
    static let startingBalance: Amount = 1_000

    let chain: any ScenarioChain
    let alice: TestNode
    let bob: TestNode
    let params: ChannelParams
    let opening: Allocation
    let root: String

    var id: ChannelID { params.id }

    /// `wrapAlice` stands between Alice and the chain (a test that stages a race).
    init(
        on backend: ChainBackend = .local, opening: Allocation = Allocation(100, 100), policy: WatcherPolicy = fastPolicy,
        wrapAlice: (any SettlementAdapter & DevFaucet) -> any SettlementAdapter & DevFaucet = { $0 }
    ) throws {
        root = try makeTemporaryDirectory()
        chain = try backend.make()
        let aliceKey = SigningKey()
        let bobKey = SigningKey()
        alice = try TestNode(
            name: "alice", key: aliceKey, directory: root + "/alice", chain: chain, policy: policy, wrap: wrapAlice)
        bob = try TestNode(name: "bob", key: bobKey, directory: root + "/bob", chain: chain, policy: policy)
        params = try ChannelParams.random(
            proposer: aliceKey.publicKey, responder: bobKey.publicKey, challengeDuration: Self.challenge,
            domain: chain.domain)
        self.opening = opening
    }

    /// Mints, opens the channel (both journals), starts the watchers unless told not to,
    /// and funds it through them.
    static func open(
        on backend: ChainBackend = .local, opening: Allocation = Allocation(100, 100), policy: WatcherPolicy = fastPolicy,
        watching: Set<String> = ["alice", "bob"]
    ) async throws -> TwoNodes {
        let nodes = try TwoNodes(on: backend, opening: opening, policy: policy)
        try await nodes.openChannel()
        for node in [nodes.alice, nodes.bob] where watching.contains(node.name) { await node.startWatching() }
        try await nodes.fund()
        return nodes
    }

    func openChannel() async throws {
        for node in [alice, bob] { try await node.adapter.mint(Self.startingBalance, to: node.key.publicKey) }
        let (aliceEngine, proposeEffects) = try await JournaledEngine.propose(
            params: params, allocation: opening, key: alice.key, journal: alice.journal)
        alice.engine = aliceEngine
        guard case let .send(.openProposal(proposal))? = proposeEffects.last else {
            throw HarnessError("no open proposal")
        }
        let (bobEngine, acceptEffects) = try await JournaledEngine.accept(proposal, key: bob.key, journal: bob.journal)
        bob.engine = bobEngine
        try await bob.perform(acceptEffects)
        try await deliver()
    }

    /// Both watchers deposit; returns once the chain shows the channel funded. Nodes whose
    /// watcher is not running deposit directly.
    func fund() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (node, seat) in [(alice, ParticipantIndex.first), (bob, .second)] {
                let params = self.params
                let opening = self.opening
                group.addTask {
                    if node.isWatching {
                        try await node.watcher.fund(params, opening: opening)
                    } else {
                        try await node.adapter.deposit(params: params, opening: opening, participant: seat, amount: opening[seat])
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Moves queued messages both ways until none are left.
    func deliver() async throws {
        while !alice.outbox.isEmpty || !bob.outbox.isEmpty {
            for (from, to) in [(alice, bob), (bob, alice)] {
                let messages = from.outbox
                from.outbox = []
                for message in messages { try await to.input(.received(message)) }
            }
        }
    }

    /// `count` payments of `amount` from `from` to the other side, each fully countersigned.
    func pay(from: TestNode, amount: Amount, count: Int = 1) async throws {
        for _ in 0..<count {
            try await from.input(.update(UpdateID.random(in: 1...UInt64.max), .pay(amount: amount)))
            try await deliver()
        }
    }

    /// Registers `state` on chain as `node`, the way a cheater would: by hand, not via its watcher.
    func register(_ state: SignedState, as node: TestNode) async throws {
        try await node.adapter.register(state)
    }

    func advance(by seconds: UInt64) async throws { try await chain.advance(by: seconds) }

    /// The channel as the chain shows it now.
    func onChain() async throws -> ChannelOnChain? { try await alice.adapter.channel(id) }

    func now() async throws -> ChainTime { try await alice.adapter.now() }

    /// Both accounts plus what the channel still holds: always what was minted.
    func moneyOnChain() async throws -> Amount {
        let accounts = try await alice.account() + bob.account()
        return try await accounts + (onChain()?.holdings ?? 0)
    }

    func shutDown() async {
        await alice.shutDown()
        await bob.shutDown()
        await chain.shutDown()
        try? FileManager.default.removeItem(atPath: root)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 5 ms until it holds or `deadline` passes.
