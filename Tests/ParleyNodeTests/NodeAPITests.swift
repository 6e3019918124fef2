import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyTestSupport
import Testing

@testable import ParleyNode

// Behaviour of the public `Node` API: real nodes on loopback TCP, real fsync'd journals,
// a chain per test (the embedded LocalChain, or a `parley devchain` subprocess where the
// settlement matters). Chain time moves only when a test advances it.

/// Watcher timers short enough for tests, long enough not to fire by accident on a busy
/// machine: a dropped session does not start an exit unless a test waits 30 s for it.
let apiWatcherPolicy = WatcherPolicy(
    disconnectGrace: .seconds(30), fundingTimeout: .seconds(5), clockPollInterval: .milliseconds(10),
    retryDelay: .milliseconds(20))

let apiChallenge: UInt64 = 60
let startingBalance: Amount = 1_000
/// Long enough that a loaded machine does not time out a healthy proposal; the silent-peer
/// test uses `silentTimeout`.
let healthyTimeout: Duration = .seconds(10)
private let silentTimeout: Duration = .milliseconds(300)

func apiPolicy(proposalTimeout: Duration = healthyTimeout) -> NodePolicy {
    NodePolicy(watcher: apiWatcherPolicy, proposalTimeout: proposalTimeout, challengeDuration: apiChallenge)
}

/// Everything one node reported, in order.
final class NodeEventLog: Sendable {
    private let storage = Mutex<[NodeEvent]>([])

    init(_ node: Node) {
        let stream = node.events
        Task { for await event in stream { self.storage.withLock { $0.append(event) } } }
    }

    var all: [NodeEvent] { storage.withLock { $0 } }

    func contains(_ event: NodeEvent) -> Bool { all.contains(event) }

    func contains(where predicate: (NodeEvent) -> Bool) -> Bool { all.contains(where: predicate) }

    /// Waits until `event` is reported (10 s at most).
    func waitFor(_ event: NodeEvent) async -> Bool { await eventually { self.contains(event) } }
}

/// One node of a test: the node, its event log, its key and where it listens.
struct APINode: Sendable {
    let node: Node
    let events: NodeEventLog
    let key: SigningKey
    let directory: String

    var address: SocketAddress {
        get async throws {
            guard let address = await node.listeningAddress else { throw HarnessError("node does not listen") }
            return address
        }
    }

    /// This node's account on chain.
    func account() async throws -> Amount { try await node.settlement.balance(of: key.publicKey) }

    func status(_ id: ChannelID) throws -> ChannelStatus {
        guard let channel = node.channels.first(where: { $0.id == id }) else { throw HarnessError("no channel \(id)") }
        return try channel.status
    }
}

/// A chain, a temporary root for journals, and every node started on them; `shutDown`
/// stops all of it and removes the directory.
final class APICluster: Sendable {
    let chain: any ScenarioChain
    let root: String
    private let nodes = Mutex<[Node]>([])
    private let keys = Mutex<[PublicKey]>([])

    init(_ backend: ChainBackend) throws {
        chain = try backend.make()
        root = try makeTemporaryDirectory("parley-node-api")
    }

    init(chain: any ScenarioChain) throws {
        self.chain = chain
        root = try makeTemporaryDirectory("parley-node-api")
    }

    /// Starts a node named `name` (journal in `root/name`). A key seen for the first time
    /// gets `startingBalance` minted.
    func start(
        _ name: String, key: SigningKey = SigningKey(), port: UInt16 = 0, policy: NodePolicy = apiPolicy()
    ) async throws -> APINode {
        let adapter = chain.adapter(for: key)
        let isNew = keys.withLock { keys in
            if keys.contains(key.publicKey) { return false }
            keys.append(key.publicKey)
            return true
        }
        if isNew { try await adapter.mint(startingBalance, to: key.publicKey) }
        var logger = Logger(label: "parley.test.\(name)")
        logger.logLevel = .warning
        let directory = root + "/" + name
        let node = try await Node(
            identity: key, listen: .loopbackIPv4(port: port), journal: directory, settlement: adapter, policy: policy,
            logger: logger)
        nodes.withLock { $0.append(node) }
        return APINode(node: node, events: NodeEventLog(node), key: key, directory: directory)
    }

    /// Accounts of every key ever started plus what the channels still hold: always what was minted.
    func expectConservation(_ channels: [ChannelID], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let adapter = chain.adapter(for: SigningKey())
        var total: Amount = 0
        for key in keys.withLock({ $0 }) { total += try await adapter.balance(of: key) }
        for id in channels { total += try await adapter.channel(id)?.holdings ?? 0 }
        let minted = startingBalance * Amount(keys.withLock { $0.count })
        #expect(total == minted, "money on chain \(total) != minted \(minted)", sourceLocation: sourceLocation)
    }

    func advance(by seconds: UInt64) async throws { try await chain.advance(by: seconds) }

    func onChain(_ id: ChannelID) async throws -> ChannelOnChain? {
        try await chain.adapter(for: SigningKey()).channel(id)
    }

    func shutDown() async {
        for node in nodes.withLock({ $0 }) { await node.shutDown() }
        await chain.shutDown()
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Runs `body` on a fresh cluster and always shuts it down (defer cannot await).
func withCluster(_ backend: ChainBackend = .local, _ body: (APICluster) async throws -> Void) async throws {
    let cluster = try APICluster(backend)
    do { try await body(cluster) } catch {
        await cluster.shutDown()
        throw error
    }
    await cluster.shutDown()
}

/// Alice and Bob, each listening on loopback, and a channel Alice opened with Bob.
func openPair(
    _ cluster: APICluster, deposit: Amount = 100, theirs: Amount = 100, alicePolicy: NodePolicy = apiPolicy(),
    bobPolicy: NodePolicy = apiPolicy()
) async throws -> (alice: APINode, bob: APINode, channel: Channel) {
    let alice = try await cluster.start("alice", policy: alicePolicy)
    let bob = try await cluster.start("bob", policy: bobPolicy)
    let channel = try await alice.node.open(
        with: bob.key.publicKey, at: try await bob.address, deposit: deposit, theirs: theirs, timeout: .seconds(10))
    return (alice, bob, channel)
}

/// Bob's handle on a channel Alice opened; waits until his node has it and sees it funded.
func peerChannel(_ id: ChannelID, on peer: APINode) async throws -> Channel {
    let found = await eventually {
        guard let status = try? peer.status(id) else { return false }
        return status.isFunded
    }
    guard found, let channel = await peer.node.channel(id) else { throw HarnessError("peer never saw channel \(id) funded") }
    return channel
}

/// The latest state, once both ends publish the same one. A node publishes its status after
/// it has sent its answer, so the side that did not propose can trail by an instant.
private func agreedLatest(_ one: Channel, _ other: Channel) async throws -> SignedState {
    let agreed = await eventually { (try? one.status.latest) == (try? other.status.latest) }
    guard agreed else { throw HarnessError("the two ends of \(one.id) never agreed on the latest state") }
    return try one.status.latest
}

/// The error `body` throws, as a `NodeError` (an issue is recorded if it throws something else or nothing).
func nodeError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> NodeError? {
    do {
        try await body()
        Issue.record("expected a NodeError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as NodeError {
        return error
    } catch {
        Issue.record("expected a NodeError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// `body`'s result, or nil when it takes longer than `limit`. The body runs in a task of its
/// own that is left behind on timeout, so a call that hangs fails the test instead of
/// hanging the suite (a time limit cannot stop a wait that ignores cancellation).
func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    let outcome = FirstResult<T>()
    return await withCheckedContinuation { continuation in
        outcome.arm(continuation)
        Task { outcome.finish(await body()) }
        Task {
            try? await Task.sleep(for: limit)
            outcome.finish(nil)
        }
    }
}

final class FirstResult<T: Sendable>: Sendable {
    private let waiter = Mutex<CheckedContinuation<T?, Never>?>(nil)
    func arm(_ continuation: CheckedContinuation<T?, Never>) { waiter.withLock { $0 = continuation } }
    func finish(_ value: T?) { waiter.withLock { $0.take() }?.resume(returning: value) }
}

@Suite("Node API", .serialized, .timeLimit(.minutes(2)))
struct NodeAPITests {
    /// Issue 22, item 2: neither side signs version 0 of a channel its chain account
    /// cannot fund. The opener finds out at once; the responder refuses the proposal (and
    /// says why in an `error` event), so the opener's open times out with nothing signed
    /// and no deposit made on either side.
    @Test func neitherSideSignsAChannelItsAccountCannotFund() async throws {
        try await withCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let tooMuch = startingBalance + 1
            let error = await nodeError {
                _ = try await alice.node.open(with: bob.key.publicKey, at: try await bob.address, deposit: tooMuch, theirs: 0)
            }
            #expect(error == .chainBalanceTooLow(have: startingBalance, need: tooMuch), "\(String(describing: error))")
            let refused = await nodeError {
                _ = try await alice.node.open(
                    with: bob.key.publicKey, at: try await bob.address, deposit: 10, theirs: tooMuch, timeout: .seconds(2))
            }
            #expect(refused != nil)
            #expect(bob.node.statuses.isEmpty, "bob signed a channel he cannot fund")
            #expect(await eventually {
                bob.events.contains(where: { event in
                    if case let .error(_, why) = event { return why.contains("less than") }
                    return false
                })
            })
            #expect(try await cluster.chain.adapter(for: bob.key).balance(of: bob.key.publicKey) == startingBalance)
            try await cluster.expectConservation([])
        }
    }

    /// Concurrent opens count each other's deposits: two opens of 600 from an account of
    /// 1,000 cannot both be signed.
    @Test func concurrentOpensCannotPromiseTheSameMoneyTwice() async throws {
        try await withCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let carol = try await cluster.start("carol")
            let targets = [(bob.key.publicKey, try await bob.address), (carol.key.publicKey, try await carol.address)]
            let outcomes = await withTaskGroup(of: NodeError?.self) { group in
                for (key, address) in targets {
                    group.addTask {
                        do {
                            _ = try await alice.node.open(with: key, at: address, deposit: 600, theirs: 0)
                            return nil
                        } catch let error as NodeError {
                            return error
                        } catch {
                            return .invalidParameters("\(error)")
                        }
                    }
                }
                var all: [NodeError?] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.filter { $0 == nil }.count <= 1, "\(outcomes)")
            #expect(outcomes.contains { if case .chainBalanceTooLow? = $0 { true } else { false } }, "\(outcomes)")
        }
    }

    /// Issue 22, item 6: the API refuses a payment of 0 as the CLI does, before anything is
    /// signed; and a dispute on a closed channel is refused rather than answered "ok".
    @Test func aZeroPaymentAndADisputeAfterTheCloseAreRefused() async throws {
        try await withCluster { cluster in
            let (_, _, channel) = try await openPair(cluster)
            let error = await nodeError { _ = try await channel.pay(0) }
            guard case .invalidParameters? = error else {
                Issue.record("pay(0) gave \(String(describing: error))")
                return
            }
            #expect(try channel.status.latest.version == 0)
            try await channel.close()
            let dispute = await nodeError { try await channel.dispute() }
            #expect(dispute == .channelClosed(channel.id), "\(String(describing: dispute))")
        }
    }

    // a.
    @Test(arguments: ChainBackend.allCases)
    func paymentsBothWaysThenCooperativeCloseReturnsThePayoutOnChain(_ backend: ChainBackend) async throws {
        try await withCluster(backend) { cluster in
            let (alice, bob, channel) = try await openPair(cluster, deposit: 100, theirs: 50)
            let bobChannel = try await peerChannel(channel.id, on: bob)

            let first = try await channel.pay(25)
            #expect(first.version == 1)
            #expect(first.state.allocation == Allocation(75, 75))
            #expect(first.isFullySigned)
            try await channel.pay(35)
            let back = try await bobChannel.pay(10)
            #expect(back.version == 3)
            #expect(back.state.allocation == Allocation(50, 100))
            // Alice committed before her accept went out; her published status may trail by an instant.
            #expect(await eventually { (try? channel.status.latest) == back }, "Alice's latest is the state Bob's payment returned")
            #expect(try channel.status.myBalance == 50)
            #expect(try bobChannel.status.myBalance == 100)

            let payout = try await channel.close()
            #expect(payout == 50)
            #expect(try await alice.account() == startingBalance - 100 + 50)
            try await bobChannel.waitUntilClosed()
            #expect(try await bob.account() == startingBalance - 50 + 100)

            let onChain = try #require(try await cluster.onChain(channel.id))
            #expect(onChain.concludedAllocation == Allocation(50, 100))
            #expect(onChain.registeredVersion == 4)
            #expect(onChain.holdings == 0)
            #expect(try channel.status.latest.state.isFinal)
            #expect(await eventually { (try? bobChannel.status.isClosed) == true })
            #expect(await eventually { (try? channel.status.isClosed) == true })
            try await cluster.expectConservation([channel.id])
        }
    }

    // b.
    @Test
    func defaultHandlerDeclinesAProposalThatTakesFromTheResponder() async throws {
        try await withCluster { cluster in
            let (alice, bob, channel) = try await openPair(cluster)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            try await channel.pay(10)
            let before = try channel.status.latest

            // Alice proposes to move 60 of Bob's 110 to herself.
            do {
                _ = try await channel.update { $0.allocation = Allocation(150, 50) }
                Issue.record("a proposal taking from Bob was accepted by his default handler")
            } catch let error as NodeError {
                #expect(error == .updateFailed(channel.id, .rejected(.declined("that takes from my balance"))))
            }
            #expect(try channel.status.latest == before)
            #expect(try bobChannel.status.latest == before)
            #expect(await bob.events.waitFor(.rejected(channel.id, version: 2, reason: "that takes from my balance", byPeer: false)))
            // The event log reads the stream on its own task: wait for it rather than look once.
            #expect(await eventually {
                alice.events.contains { event in
                    if case .rejected(channel.id, version: nil, reason: _, byPeer: true) = event { true } else { false }
                }
            })

            // Paying Bob is still fine, at the next unused version (2 was burned).
            let paid = try await channel.pay(5)
            #expect(paid.version == 3)
            #expect(paid.state.allocation == Allocation(85, 115))
        }
    }

    // b.
    @Test
    func customHandlerThatDeclinesEverythingMakesPayFailAndChangesNothing() async throws {
        try await withCluster { cluster in
            let (alice, bob, channel) = try await openPair(cluster)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            try await channel.pay(10)
            let before = try channel.status.latest

            let asked = Atomic<Int>(0)
            bob.node.setUpdateHandler { _ in
                asked.add(1, ordering: .relaxed)
                return .reject("closed for business")
            }
            let error = await nodeError { try await channel.pay(1) }
            #expect(error == .updateFailed(channel.id, .rejected(.declined("closed for business"))))
            #expect(asked.load(ordering: .relaxed) == 1)
            #expect(try channel.status.latest == before)
            #expect(try bobChannel.status.latest == before)
            #expect(try await alice.account() == startingBalance - 100)

            // Bob's own payments are not subject to his handler; Alice's default accepts them.
            let paid = try await bobChannel.pay(4)
            #expect(paid.state.allocation == Allocation(94, 106))
            #expect(asked.load(ordering: .relaxed) == 1)
        }
    }

    // c.
    @Test
    func oneHubManyPeersManyChannelsWithConcurrentPaymentsEverywhere() async throws {
        try await withCluster { cluster in
            let hub = try await cluster.start("hub")
            var peers: [APINode] = []
            for index in 0..<3 { peers.append(try await cluster.start("peer\(index)")) }

            // Six channels, opened at once: two per peer, on one session per peer.
            let opened = try await withThrowingTaskGroup(of: (Int, Channel).self) { group in
                for (index, peer) in peers.enumerated() {
                    let address = try await peer.address
                    for _ in 0..<2 {
                        group.addTask {
                            (index, try await hub.node.open(
                                with: peer.key.publicKey, at: address, deposit: 100, theirs: 100, timeout: .seconds(10)))
                        }
                    }
                }
                var all: [(Int, Channel)] = []
                for try await pair in group { all.append(pair) }
                return all
            }
            #expect(opened.count == 6)
            #expect(Set(opened.map(\.1.id)).count == 6)
            var pairs: [(hub: Channel, peer: Channel, peerNode: APINode)] = []
            for (index, channel) in opened {
                pairs.append((channel, try await peerChannel(channel.id, on: peers[index]), peers[index]))
            }

            // On every channel both ends pay at once, several payments in flight per side.
            let rounds = 8
            let hubAmount: Amount = 3
            let peerAmount: Amount = 2
            try await withThrowingTaskGroup(of: Void.self) { group in
                for pair in pairs {
                    for _ in 0..<rounds {
                        group.addTask { try await pair.hub.pay(hubAmount) }
                        group.addTask { try await pair.peer.pay(peerAmount) }
                    }
                }
                try await group.waitForAll()
            }

            let hubBalance = 100 - Amount(rounds) * hubAmount + Amount(rounds) * peerAmount
            for pair in pairs {
                let mine = try pair.hub.status
                #expect(mine.myBalance == hubBalance)
                #expect(mine.peerBalance == 200 - hubBalance)
                // Payments waiting together ride together (coalesced), so each side needs at
                // least one update and at most one per payment; burned versions push it higher.
                #expect(mine.latest.version >= 2, "both sides' payments committed")
                #expect(mine.latest.isFullySigned)
                let synced = await eventually { (try? pair.peer.status.latest) == mine.latest }
                #expect(synced, "both ends hold the same latest state")
                #expect(try pair.peer.status.myBalance == 200 - hubBalance)
            }
            #expect(hub.node.channels.count == 6)
            for peer in peers { #expect(peer.node.channels.count == 2) }
            #expect(try await hub.account() == startingBalance - 600)
        }
    }

    // d.
    @Test
    func restartedNodesResumeTheChannelAboveTheOldVersions() async throws {
        try await withCluster { cluster in
            let aliceKey = SigningKey()
            let bobKey = SigningKey()
            let alice = try await cluster.start("alice", key: aliceKey)
            let bob = try await cluster.start("bob", key: bobKey)
            let bobPort = try await bob.address.port
            let channel = try await alice.node.open(
                with: bobKey.publicKey, at: try await bob.address, deposit: 100, theirs: 100, timeout: .seconds(10))
            let id = channel.id
            try await channel.pay(10)
            try await channel.pay(10)
            let oldBobChannel = try await peerChannel(id, on: bob)
            try await oldBobChannel.pay(5)
            let before = try await agreedLatest(channel, oldBobChannel)
            #expect(before.version == 3)
            #expect(before.state.allocation == Allocation(85, 115))

            #expect(FileManager.default.fileExists(atPath: alice.directory + "/peers"), "Alice keeps where Bob listens")
            await alice.node.shutDown()
            await bob.node.shutDown()
            #expect(await nodeError { try await channel.pay(1) } == .stopped, "a handle on a shut-down node fails, it does not hang")

            // New nodes on the same journals: Bob on his old port, Alice redials from her `peers` file.
            let bob2 = try await cluster.start("bob", key: bobKey, port: bobPort)
            let alice2 = try await cluster.start("alice", key: aliceKey)
            #expect(try alice2.status(id).latest == before, "Alice recovered the channel from her journal")
            #expect(try bob2.status(id).latest == before, "Bob recovered the channel from his journal")
            let reconnected = await eventually {
                (try? alice2.status(id).isConnected) == true && (try? bob2.status(id).isConnected) == true
            }
            #expect(reconnected, "Alice redialled Bob at the address in her peers file")

            let aliceChannel = try #require(await alice2.node.channel(id))
            let bobChannel = try await peerChannel(id, on: bob2)
            let paid = try await aliceChannel.pay(20)
            #expect(paid.version > before.version)
            #expect(paid.state.allocation == Allocation(65, 135))
            let back = try await bobChannel.pay(15)
            #expect(back.version > paid.version)
            #expect(back.state.allocation == Allocation(80, 120))

            let payout = try await aliceChannel.close()
            #expect(payout == 80)
            try await bobChannel.waitUntilClosed()
            #expect(try await alice2.account() == startingBalance - 100 + 80)
            #expect(try await bob2.account() == startingBalance - 100 + 120)
            try await cluster.expectConservation([id])
        }
    }

    /// The race behind a flaky `restartedNodes…` run: Bob journals our final state, sends
    /// his accept and registers it, and the registration (which concludes at once) reached
    /// Alice's watcher before her loop read the accept. `close()` failed with "closing"
    /// although the close had succeeded. The relay holds Bob's accept back to force that order.
    @Test func closeSucceedsWhenTheChainReportsTheCloseBeforeThePeersAcceptArrives() async throws {
        try await withCloseAcceptHeld { (held: HeldClose) async throws in
            let channel = held.channel
            #expect(try channel.status.closingReason == .registeredOnChain(version: 2))
            #expect(try channel.status.latest.version == 1, "Bob's accept is still held in the relay")

            held.relay.releaseTargetBytes()
            #expect(try await held.closing.value == 70, "close() returns the payout once the accept arrives")
            #expect(try channel.status.latest.state.isFinal, "the countersigned final state is journaled")
            #expect(try await held.alice.account() == startingBalance - 100 + 70)
            try await held.bobChannel.waitUntilClosed()
            #expect(try await held.bob.account() == startingBalance - 100 + 130)
            try await held.cluster.expectConservation([channel.id])

            // On disk: the late countersignature is journaled as committed, and the record
            // stays closed (the watcher's `closed` entry came first).
            await held.alice.node.shutDown()
            let journal = try Journal(directory: held.alice.directory)
            defer { journal.close() }
            let record = try #require(journal.channels[channel.id])
            #expect(record.latest.version == 2 && record.latest.isFullySigned && record.latest.state.isFinal)
            #expect(record.isClosed)
        }
    }

    /// The same order, but the link drops before the accept arrives: nothing will answer,
    /// so `close()` fails at once with why, instead of waiting for the proposal timeout.
    @Test func closeWhoseAcceptIsLostWithTheLinkFailsWithTheChainsReason() async throws {
        try await withCloseAcceptHeld { (held: HeldClose) async throws in
            let started = ContinuousClock.now
            held.relay.dropConnections()
            let error = await nodeError { _ = try await held.closing.value }
            #expect(error == .channelClosing(held.channel.id, because: .registeredOnChain(version: 2)))
            #expect(ContinuousClock.now - started < healthyTimeout, "released by the lost link, not the proposal timeout")
            #expect(try await held.alice.account() == startingBalance - 100 + 70, "the money still settled")
        }
    }

    /// Alice and Bob through a `HoldingRelay` (Alice dials the relay), one payment of 30,
    /// then Alice's `close()` with Bob's bytes held back, until Alice's watcher has closed the
    /// channel from what the chain shows; `body` takes it from there.
    private func withCloseAcceptHeld(_ body: (HeldClose) async throws -> Void) async throws {
        try await withCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let relay = try await HoldingRelay(to: try await bob.address)
            do {
                let channel = try await alice.node.open(
                    with: bob.key.publicKey, at: relay.address, deposit: 100, theirs: 100, timeout: .seconds(10))
                let bobChannel = try await peerChannel(channel.id, on: bob)
                try await channel.pay(30)
                _ = try await agreedLatest(channel, bobChannel)

                relay.holdTargetBytes()
                let closing = Task { try await channel.close() }
                let closedFromTheChain = await eventually { (try? channel.status.isClosed) == true }
                try #require(closedFromTheChain, "Alice's watcher saw Bob's registration of the final state and withdrew")
                try await body(HeldClose(
                    cluster: cluster, alice: alice, bob: bob, relay: relay, channel: channel, bobChannel: bobChannel,
                    closing: closing))
            } catch {
                await relay.shutDown()
                throw error
            }
            await relay.shutDown()
        }
    }

    private struct HeldClose {
        let cluster: APICluster
        let alice: APINode
        let bob: APINode
        let relay: HoldingRelay
        let channel: Channel
        let bobChannel: Channel
        /// Alice's `close()`, waiting for Bob's accept.
        let closing: Task<Amount, any Error>
    }

    // e.
    @Test(arguments: ChainBackend.allCases)
    func silentPeerMakesPayFailFastAndTheWatcherExitsWithTheLatestFullySignedState(_ backend: ChainBackend) async throws {
        try await withCluster(backend) { cluster in
            let policy = apiPolicy(proposalTimeout: silentTimeout)
            let (alice, bob, channel) = try await openPair(cluster, alicePolicy: policy, bobPolicy: policy)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            try await channel.pay(10)
            let latest = try await agreedLatest(channel, bobChannel)
            #expect(latest.version == 1)

            bob.node.setSilent(true)
            let started = ContinuousClock.now
            let error = await nodeError { try await channel.pay(10) }
            let waited = ContinuousClock.now - started
            #expect(error == .peerUnresponsive(channel.id, after: silentTimeout))
            #expect(waited >= silentTimeout)
            #expect(waited < .seconds(5), "pay must fail after about the proposal timeout, not hang (took \(waited))")

            #expect(await alice.events.waitFor(.peerSilent(channel.id)))
            #expect(await alice.events.waitFor(.exitStarted(channel.id, version: 1, reason: .peerUnresponsive)))
            #expect(try await cluster.onChain(channel.id)?.registeredVersion == 1)
            #expect(await nodeError { try await channel.pay(1) } == .channelClosing(channel.id, because: .peerUnresponsive))

            try await cluster.advance(by: apiChallenge)
            #expect(try await eventually { try await alice.account() == startingBalance - 100 + 90 })
            #expect(try await eventually { try await bob.account() == startingBalance - 100 + 110 })
            try await channel.waitUntilClosed()
            try await bobChannel.waitUntilClosed()
            #expect(try await cluster.onChain(channel.id)?.concludedAllocation == Allocation(90, 110))
            #expect(await alice.events.waitFor(.closed(channel.id)))
            try await cluster.expectConservation([channel.id])
        }
    }

    // f.
    @Test(arguments: ChainBackend.allCases)
    func disputeWhileThePeerIsFineRegistersStopsUpdatesAndPaysBothAfterTheWindow(_ backend: ChainBackend) async throws {
        try await withCluster(backend) { cluster in
            let (alice, bob, channel) = try await openPair(cluster)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            try await channel.pay(20)
            try await bobChannel.pay(5)
            #expect(try await agreedLatest(channel, bobChannel).state.allocation == Allocation(85, 115))

            try await channel.dispute()
            #expect(await nodeError { try await channel.pay(1) } == .channelClosing(channel.id, because: .exiting(.requested)))
            #expect(try channel.status.closingReason == .exiting(.requested))
            #expect(await alice.events.waitFor(.exitStarted(channel.id, version: 2, reason: .requested)))
            #expect(try await cluster.onChain(channel.id)?.registeredVersion == 2)
            let bobSawIt = await eventually {
                bob.events.contains { event in
                    if case .registered(channel.id, version: 2, deadline: _, by: .first) = event { true } else { false }
                }
            }
            #expect(bobSawIt, "Bob's node reports Alice's registration")
            #expect(
                await nodeError { try await bobChannel.pay(1) } == .channelClosing(channel.id, because: .registeredOnChain(version: 2)),
                "Bob's channel closes because of what the chain shows")

            try await cluster.advance(by: apiChallenge)
            try await channel.waitUntilClosed()
            try await bobChannel.waitUntilClosed()
            #expect(try await alice.account() == startingBalance - 100 + 85)
            #expect(try await bob.account() == startingBalance - 100 + 115)
            #expect(await alice.events.waitFor(.concluded(channel.id, version: 2, allocation: Allocation(85, 115))))
            #expect(await alice.events.waitFor(.withdrawn(channel.id, amount: 85)))
            #expect(await bob.events.waitFor(.withdrawn(channel.id, amount: 115)))
            try await cluster.expectConservation([channel.id])
        }
    }

    // e'. The session side of silence: a peer that is gone longer than the grace period.
    @Test(arguments: ChainBackend.allCases)
    func peerGoneBeyondTheGraceIsExitedAndCollectsItsShareWhenItComesBack(_ backend: ChainBackend) async throws {
        try await withCluster(backend) { cluster in
            var watcher = apiWatcherPolicy
            watcher.disconnectGrace = .milliseconds(200)
            let alicePolicy = NodePolicy(watcher: watcher, proposalTimeout: healthyTimeout, challengeDuration: apiChallenge)
            let (alice, bob, channel) = try await openPair(cluster, alicePolicy: alicePolicy)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            try await channel.pay(30)
            try await bobChannel.pay(5)
            let latest = try await agreedLatest(channel, bobChannel)
            #expect(latest.state.allocation == Allocation(75, 125))

            await bob.node.shutDown()
            let noticed = await eventually {
                alice.events.contains { if case .peerDisconnected(bob.key.publicKey, reason: _) = $0 { true } else { false } }
            }
            #expect(noticed, "Alice's node reports the session ended")
            #expect(await alice.events.waitFor(.exitStarted(channel.id, version: 2, reason: .peerDisconnected)))
            try await cluster.advance(by: apiChallenge)
            try await channel.waitUntilClosed()
            #expect(try await alice.account() == startingBalance - 100 + 75)
            #expect(try await cluster.onChain(channel.id)?.holdings == 125, "Bob's share waits for him")
            try await cluster.expectConservation([channel.id])

            // Bob's node comes back on its journal and collects from the chain's history.
            let back = try await cluster.start("bob", key: bob.key)
            #expect(try await eventually { try await back.account() == startingBalance - 100 + 125 })
            #expect(await back.events.waitFor(.withdrawn(channel.id, amount: 125)))
            #expect(await back.events.waitFor(.closed(channel.id)))
            try await cluster.expectConservation([channel.id])
        }
    }

    // h'. An open the peer's open handler declines.
    @Test
    func openDeclinedByThePeersOpenHandlerTimesOutAndFundsNothing() async throws {
        try await withCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let asked = Mutex<[OpenRequest]>([])
            bob.node.setOpenHandler { request in
                asked.withLock { $0.append(request) }
                return false
            }
            let address = try await bob.address
            let result = await within(.seconds(10)) {
                await nodeError {
                    _ = try await alice.node.open(
                        with: bob.key.publicKey, at: address, deposit: 70, theirs: 30, timeout: .seconds(1))
                }
            }
            guard let error = result else {
                Issue.record("open with a 1 s timeout was still waiting after 10 s")
                return
            }
            guard case let .openTimedOut(id) = error else {
                Issue.record("declined open: \(String(describing: error))")
                return
            }
            let request = try #require(asked.withLock { $0.first })
            #expect(request.channel == id)
            #expect(request.peer == alice.key.publicKey)
            #expect(request.theirDeposit == 70 && request.myDeposit == 30)
            #expect(bob.node.channels.isEmpty)
            #expect(try await cluster.onChain(id) == nil, "nothing was deposited")
            #expect(try await alice.account() == startingBalance)
        }
    }

    // g.
    @Test
    func eventsReportOpenedFundedCommittedAndClosedInOrderOnBothNodes() async throws {
        try await withCluster { cluster in
            let (alice, bob, channel) = try await openPair(cluster)
            let id = channel.id
            let bobChannel = try await peerChannel(id, on: bob)
            let paid = try await channel.pay(10)
            let back = try await bobChannel.pay(3)
            try await channel.close()
            try await bobChannel.waitUntilClosed()
            #expect(await alice.events.waitFor(.closed(id)))
            #expect(await bob.events.waitFor(.closed(id)))

            @Sendable func order(_ log: NodeEventLog, peer: PublicKey) -> [String] {
                log.all.compactMap { event in
                    switch event {
                    case .opened(id, peer: peer): "opened"
                    case .funded(id): "funded"
                    case let .committed(id2, signed, mine) where id2 == id: "committed v\(signed.version) mine=\(mine)"
                    case .closed(id): "closed"
                    default: nil
                    }
                }
            }
            // The final state (v3) is left out of the exact order: the watcher can see it in the
            // journal, settle and report `.closed` before the runner reports `.committed` for it
            // (a known race, see the report); it must be there all the same.
            let withoutFinal = { (log: NodeEventLog, peer: PublicKey) in order(log, peer: peer).filter { !$0.hasPrefix("committed v3") } }
            #expect(withoutFinal(alice.events, bob.key.publicKey) == [
                "opened", "funded", "committed v1 mine=true", "committed v2 mine=false", "closed",
            ])
            #expect(withoutFinal(bob.events, alice.key.publicKey) == [
                "opened", "funded", "committed v1 mine=false", "committed v2 mine=true", "closed",
            ])
            // Reported after `.closed` at times (the race above), so waited for rather than read once.
            #expect(await eventually {
                order(alice.events, peer: bob.key.publicKey).filter { $0.hasPrefix("committed v3") } == ["committed v3 mine=true"]
            })
            #expect(await eventually {
                order(bob.events, peer: alice.key.publicKey).filter { $0.hasPrefix("committed v3") } == ["committed v3 mine=false"]
            })
            #expect(alice.events.contains(.committed(id, paid, mine: true)))
            #expect(bob.events.contains(.committed(id, paid, mine: false)))
            #expect(bob.events.contains(.committed(id, back, mine: true)))
            #expect(alice.events.contains(.committed(id, back, mine: false)))
            #expect(bob.events.contains(.proposed(id, version: 1)))
            #expect(alice.events.contains(.peerConnected(bob.key.publicKey)))
        }
    }

    // h.
    @Test
    func badOpenAndPayRequestsFailWithTypedErrors() async throws {
        try await withCluster { cluster in
            let alice = try await cluster.start("alice")
            let here = try await alice.address

            var error = await nodeError {
                _ = try await alice.node.open(with: alice.key.publicKey, at: here, deposit: 10, theirs: 10)
            }
            #expect(error == .invalidParameters("a channel needs two different keys"))
            error = await nodeError {
                _ = try await alice.node.open(with: SigningKey().publicKey, at: here, deposit: .max, theirs: 1)
            }
            guard case .invalidParameters = error else {
                Issue.record("overflowing deposits: \(String(describing: error))")
                return
            }

            // A port nobody listens on: a node that listened there and shut down.
            let ghost = try await cluster.start("ghost")
            let nowhere = try await ghost.address
            await ghost.node.shutDown()
            let started = ContinuousClock.now
            error = await within(.seconds(10)) {
                await nodeError {
                    _ = try await alice.node.open(
                        with: ghost.key.publicKey, at: nowhere, deposit: 10, theirs: 10, timeout: .seconds(1))
                }
            } ?? nil
            let waited = ContinuousClock.now - started
            guard case .peerUnreachable = error else {
                Issue.record("open to a closed port: \(String(describing: error))")
                return
            }
            // A refused dial fails the open at once (issue 22), not at the open's own 1 s
            // timeout; the bound leaves room for a machine the whole suite loads.
            #expect(waited < .seconds(9), "took \(waited)")
            #expect("\(error.map(String.init(describing:)) ?? "")".contains("refused"), "\(String(describing: error))")
            #expect(alice.node.channels.isEmpty)

            // An id this node never heard of.
            let stranger = try ChannelParams.random(proposer: SigningKey().publicKey, responder: SigningKey().publicKey).id
            error = await nodeError { try await Channel(id: stranger, node: alice.node).pay(1) }
            #expect(error == .unknownChannel(stranger))
            #expect(await alice.node.channel(stranger) == nil)

            // More than we have.
            let bob = try await cluster.start("bob")
            let channel = try await alice.node.open(
                with: bob.key.publicKey, at: try await bob.address, deposit: 100, theirs: 40, timeout: .seconds(10))
            let bobChannel = try await peerChannel(channel.id, on: bob)
            error = await nodeError { try await channel.pay(101) }
            #expect(error == .updateFailed(channel.id, .refused(.insufficientFunds(available: 100, requested: 101))))
            error = await nodeError { try await bobChannel.pay(41) }
            #expect(error == .updateFailed(channel.id, .refused(.insufficientFunds(available: 40, requested: 41))))
            #expect(try channel.status.latest.version == 0)
            #expect(try bobChannel.status.latest.version == 0)
            let paid = try await channel.pay(100)
            #expect(paid.state.allocation == Allocation(0, 140))
        }
    }
}
