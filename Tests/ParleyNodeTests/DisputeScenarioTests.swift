import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTestSupport
import ParleyWire
import Testing

@testable import ParleyNode

/// Runs `body` with a fresh pair of nodes and always shuts them down; then checks that no
/// money appeared or vanished on the chain.
private func withNodes(
    on backend: ChainBackend, opening: Allocation = Allocation(100, 100), watching: Set<String> = ["alice", "bob"],
    _ body: (TwoNodes) async throws -> Void
) async throws {
    let nodes = try await TwoNodes.open(on: backend, opening: opening, watching: watching)
    do {
        try await body(nodes)
        let money = try await nodes.moneyOnChain()
        #expect(money == Amount(2) * TwoNodes.startingBalance, "money on chain \(money) != minted \(Amount(2) * TwoNodes.startingBalance)")
    } catch {
        await nodes.shutDown()
        throw error
    }
    await nodes.shutDown()
}

/// The dispute entries in a node's journal, oldest first.
private func disputeHistory(_ node: TestNode) throws -> [DisputeEvent] {
    try JournalContents.read(directory: node.directory, keepEntries: true).entries.compactMap {
        if case let .dispute(event) = $0.body { event } else { nil }
    }
}

/// Every scenario Docs/Protocol.md's invariants 4 and 5 promise, with two nodes, real fsync'd
/// journals, a watcher per node and the embedded chain. Chain time moves only when a
/// test advances it, so every window boundary is exact.
@Suite("Dispute scenarios", .timeLimit(.minutes(1)))
struct DisputeScenarioTests {
    @Test(arguments: ChainBackend.allCases)
    func staleStateCheatIsRefutedBeforeTheWindowCloses(_ backend: ChainBackend) async throws {
        // Alice is the cheater: no honest watcher runs for her.
        try await withNodes(on: backend, watching: ["bob"]) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10)
            let old = try #require(nodes.alice.latest)
            try await nodes.pay(from: nodes.alice, amount: 10, count: 2)
            #expect(nodes.bob.latest?.version == 3)

            try await nodes.register(old, as: nodes.alice)
            let deadline = try #require((try await nodes.onChain())?.deadline)
            #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 3 })
            #expect((try await nodes.now()) < deadline, "the refutation must land inside the window")
            #expect(await eventually { nodes.bob.seen.contains { $0 == .refuted(nodes.id, stale: 1, with: 3) } })

            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.isClosed == true })
            #expect((try await nodes.onChain())?.concludedAllocation == Allocation(70, 130))
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + 130)
            let history = try disputeHistory(nodes.bob)
            #expect(history == [
                .registered(version: 1, deadline: deadline.seconds), .refuted(version: 3), .concluded(version: 3),
                .withdrawn(amount: 130),
            ])
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func silentPeerMeansUnilateralExitWithTheLatestFullySignedState(_ backend: ChainBackend) async throws {
        try await withNodes(on: backend) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10, count: 3)
            // Bob's node goes dark: it answers nothing and watches nothing.
            nodes.bob.silent = true
            await nodes.bob.watcher.stop()
            try await nodes.pay(from: nodes.alice, amount: 10)
            #expect(nodes.alice.latest?.version == 3)
            #expect(nodes.alice.engine?.engine.highestSignedVersion == 4)

            // Alice's proposal times out; her node tells the watcher.
            await nodes.alice.watcher.peerUnresponsive(nodes.id)
            #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 3 })
            #expect(
                await eventually { nodes.alice.seen.contains { $0 == .exitStarted(nodes.id, version: 3, reason: .peerUnresponsive) } },
                "alice saw \(nodes.alice.seen.all)")

            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually { nodes.alice.journal.channels[nodes.id]?.isClosed == true })
            #expect((try await nodes.onChain())?.concludedAllocation == Allocation(70, 130))
            #expect((try await nodes.alice.account()) == TwoNodes.startingBalance - 100 + 70)

            // Bob comes back later; his watcher replays the chain's history and collects.
            try await nodes.bob.restart(policy: fastPolicy)
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.isClosed == true })
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + 130)
            #expect((try await nodes.onChain())?.phase == .withdrawn)
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func bothSidesRegisteringDifferentVersionsEndsWithTheNewer(_ backend: ChainBackend) async throws {
        try await withNodes(on: backend) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10, count: 3)
            // Bob commits version 4; his countersignature never reaches Alice.
            nodes.bob.dropNextAccept = true
            try await nodes.pay(from: nodes.alice, amount: 10)
            #expect(nodes.alice.latest?.version == 3)
            #expect(nodes.bob.latest?.version == 4)

            async let aliceExits: Void = nodes.alice.watcher.dispute(nodes.id)
            async let bobExits: Void = nodes.bob.watcher.dispute(nodes.id)
            _ = await (aliceExits, bobExits)
            #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 4 })

            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually {
                nodes.alice.journal.channels[nodes.id]?.isClosed == true
                    && nodes.bob.journal.channels[nodes.id]?.isClosed == true
            })
            #expect((try await nodes.onChain())?.concludedAllocation == Allocation(60, 140))
            #expect((try await nodes.alice.account()) == TwoNodes.startingBalance - 100 + 60)
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + 140)
        }
    }

    /// Bob is offline while Alice registers an old state, and his watcher starts only when
    /// chain time is one second before the deadline (still in time) or at it (too late).
    @Test(arguments: ChainBackend.allCases, [(secondsLeft: UInt64(1), refuted: true), (secondsLeft: UInt64(0), refuted: false)])
    func watcherThatWakesAtTheWindowBoundary(_ backend: ChainBackend, _ boundary: (secondsLeft: UInt64, refuted: Bool)) async throws {
        let (secondsLeft, refuted) = boundary
        try await withNodes(on: backend, watching: []) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10)
            let old = try #require(nodes.alice.latest)
            try await nodes.pay(from: nodes.alice, amount: 10, count: 2)
            try await nodes.register(old, as: nodes.alice)
            try await nodes.advance(by: TwoNodes.challenge - secondsLeft)

            await nodes.bob.startWatching()
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.dispute != nil })
            if refuted {
                #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 3 })
                try await nodes.advance(by: TwoNodes.challenge)
            }
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.isClosed == true })
            let payout = refuted ? Allocation(70, 130) : Allocation(90, 110)
            #expect((try await nodes.onChain())?.concludedAllocation == payout)
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + payout[.second])
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func nodeRestartedMidDisputeResumesAndWins(_ backend: ChainBackend) async throws {
        try await withNodes(on: backend, watching: ["bob"]) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10, count: 3)
            // Bob's node saw the registration and died before answering it: stop his watcher,
            // then register and journal what he saw, as his crashed process had.
            await nodes.bob.watcher.stop()
            let stale = try #require(try JournalContents.read(directory: nodes.alice.directory, keepEntries: true)
                .entries.compactMap { entry -> SignedState? in
                    if case let .engine(.committed(signed)) = entry.body, signed.version == 1 { signed } else { nil }
                }.first)
            try await nodes.register(stale, as: nodes.alice)
            let deadline = try #require((try await nodes.onChain())?.deadline)
            try await nodes.bob.journal.append([
                JournalEntry(channelID: nodes.id, body: .dispute(.registered(version: 1, deadline: deadline.seconds)))
            ])
            try await nodes.advance(by: TwoNodes.challenge / 2)

            try await nodes.bob.restart(policy: fastPolicy)
            #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 3 })
            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.isClosed == true })
            #expect((try await nodes.onChain())?.concludedAllocation == Allocation(70, 130))
            // Replaying the chain's history after the restart wrote nothing twice.
            let history = try disputeHistory(nodes.bob)
            #expect(history == [
                .registered(version: 1, deadline: deadline.seconds), .refuted(version: 3), .concluded(version: 3),
                .withdrawn(amount: 130),
            ])
        }
    }

    /// The devchain is SIGKILLed while a stale registration waits for an answer; it restarts
    /// on its data, nothing acknowledged is lost, the clients redial by themselves, and the
    /// refutation still lands inside the unchanged window.
    @Test func devchainKilledMidDisputeLosesNothingAndTheRefutationStillLands() async throws {
        try await withNodes(on: .devchain, watching: ["bob"]) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10)
            let old = try #require(nodes.alice.latest)
            try await nodes.pay(from: nodes.alice, amount: 10, count: 2)
            await nodes.bob.watcher.stop()
            try await nodes.register(old, as: nodes.alice)
            let before = try #require(try await nodes.onChain())

            try await nodes.chain.crashAndRestart()
            #expect(try await eventually { try await nodes.onChain() == before }, "the registration was lost")
            #expect(try await nodes.alice.account() == TwoNodes.startingBalance - 100)

            try await nodes.bob.restart(policy: fastPolicy)
            #expect(try await eventually { try await nodes.onChain()?.registeredVersion == 3 })
            #expect(try await nodes.onChain()?.deadline == before.deadline)
            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually { nodes.bob.journal.channels[nodes.id]?.isClosed == true })
            #expect(try await nodes.onChain()?.concludedAllocation == Allocation(70, 130))
            #expect(try await nodes.bob.account() == TwoNodes.startingBalance - 100 + 130)
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func cooperativeCloseConcludesAtOnceAndEachSideWithdrawsOnce(_ backend: ChainBackend) async throws {
        try await withNodes(on: backend) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10, count: 3)
            try await nodes.alice.input(.update(99, .finalize))
            try await nodes.deliver()
            #expect(nodes.alice.latest?.state.isFinal == true && nodes.bob.latest?.state.isFinal == true)

            await nodes.alice.watcher.settle(nodes.id)
            await nodes.bob.watcher.settle(nodes.id)
            try await nodes.alice.watcher.waitUntilClosed(nodes.id)
            try await nodes.bob.watcher.waitUntilClosed(nodes.id)
            #expect((try await nodes.now()) == .zero, "a final state needs no challenge window")
            #expect((try await nodes.onChain())?.phase == .withdrawn)
            #expect((try await nodes.alice.account()) == TwoNodes.startingBalance - 100 + 70)
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + 130)

            // A second withdrawal is refused and pays nothing.
            await #expect(throws: SettlementError.alreadyWithdrawn(.second)) {
                try await nodes.bob.adapter.withdraw(nodes.id, participant: .second)
            }
            #expect((try await nodes.bob.account()) == TwoNodes.startingBalance - 100 + 130)
            #expect(try disputeHistory(nodes.bob).filter { if case .withdrawn = $0 { true } else { false } }.count == 1)
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func disconnectBeyondTheGraceStartsAnExitAndReconnectingInTimeCallsItOff(_ backend: ChainBackend) async throws {
        try await withNodes(on: backend) { nodes in
            try await nodes.pay(from: nodes.alice, amount: 10)
            await nodes.alice.watcher.peerDisconnected(nodes.id)
            await nodes.alice.watcher.peerReconnected(nodes.id)
            try await Task.sleep(for: fastPolicy.disconnectGrace * 3)
            #expect((try await nodes.onChain())?.registeredVersion == nil, "a reconnect within the grace period must not dispute")

            await nodes.alice.watcher.peerDisconnected(nodes.id)
            #expect(try await eventually { (try await nodes.onChain())?.registeredVersion == 1 })
            #expect(await eventually { nodes.alice.seen.contains { $0 == .peerSilent(nodes.id) } })
            #expect(await eventually { nodes.alice.seen.contains { $0 == .exitStarted(nodes.id, version: 1, reason: .peerDisconnected) } })
            try await nodes.advance(by: TwoNodes.challenge)
            #expect(await eventually {
                nodes.alice.journal.channels[nodes.id]?.isClosed == true
                    && nodes.bob.journal.channels[nodes.id]?.isClosed == true
            })
        }
    }

    @Test(arguments: ChainBackend.allCases)
    func fundingThatNeverCompletesIsReclaimedAfterTheTimeout(_ backend: ChainBackend) async throws {
        let nodes = try TwoNodes(on: backend, policy: shortFundingPolicy)
        try await nodes.openChannel()
        await nodes.alice.startWatching()
        await #expect(throws: WatcherError.fundingTimedOut(nodes.id, after: shortFundingPolicy.fundingTimeout)) {
            try await nodes.alice.watcher.fund(nodes.params, opening: nodes.opening)
        }
        #expect((try await nodes.alice.account()) == TwoNodes.startingBalance)
        #expect((try await nodes.onChain())?.depositsClosed == true)
        // Given up, not left open at version 0 (issue 16).
        #expect(await eventually { nodes.alice.journal.channels[nodes.id]?.isClosed == true }, "the channel was left open")
        #expect(nodes.alice.journal.channels[nodes.id]?.exit == .fundingTimedOut)
        await nodes.shutDown()
    }

    /// Issue 22, item 2: the funding timeout counts from the channel's first deposit in
    /// chain time, so a restart does not start it again. Alice deposits; the peer never
    /// does; chain time passes the timeout while Alice's node is down. Her restarted watcher
    /// gives the channel up at once, although her own clock's timeout (a minute) has only
    /// just started.
    @Test(arguments: ChainBackend.allCases)
    func aRestartDoesNotExtendTheFundingTimeout(_ backend: ChainBackend) async throws {
        let policy = WatcherPolicy(
            disconnectGrace: .seconds(600), fundingTimeout: .seconds(60), clockPollInterval: .milliseconds(10),
            retryDelay: .milliseconds(20))
        let nodes = try TwoNodes(on: backend, policy: policy)
        try await nodes.openChannel()
        await nodes.alice.startWatching()
        try await nodes.alice.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        #expect(try await nodes.alice.account() < TwoNodes.startingBalance, "our deposit went in")
        try await nodes.advance(by: 30)
        try await nodes.alice.restart(policy: policy)
        try await nodes.alice.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        try await Task.sleep(for: .milliseconds(300))
        #expect(nodes.alice.journal.channels[nodes.id]?.isClosed == false, "given up before the timeout")
        try await nodes.advance(by: 32)
        let started = ContinuousClock.now
        #expect(await eventually(within: .seconds(20)) { nodes.alice.seen.contains { $0 == .abandoned(nodes.id) } })
        #expect(ContinuousClock.now - started < .seconds(30), "the restarted node waited out its own clock")
        #expect(try await eventually { try await nodes.alice.account() == TwoNodes.startingBalance }, "our deposit came back")
        await nodes.shutDown()
    }

    /// The acceptor's way (no task waits for the peer's deposit): the deadline is found by
    /// the watcher's clock poll, our deposit is taken back, and the channel is reported as
    /// given up (`.abandoned`), an outcome and not an error:
    /// no `.failed` (issue 22, item 2).
    @Test(arguments: ChainBackend.allCases)
    func backgroundFundingThatNeverCompletesIsReclaimedAndReported(_ backend: ChainBackend) async throws {
        let nodes = try TwoNodes(on: backend, policy: shortFundingPolicy)
        try await nodes.openChannel()
        await nodes.alice.startWatching()
        try await nodes.alice.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        #expect(try await nodes.alice.account() < TwoNodes.startingBalance, "our deposit went in")
        #expect(await !nodes.alice.watcher.isFunded(nodes.id))
        #expect(await eventually(within: .seconds(20)) {
            nodes.alice.seen.contains { $0 == .abandoned(nodes.id) }
        })
        #expect(!nodes.alice.seen.contains { if case .failed(nodes.id, _) = $0 { true } else { false } })
        #expect(try await eventually { try await nodes.alice.account() == TwoNodes.startingBalance })
        #expect((try await nodes.onChain())?.depositsClosed == true)
        #expect(await eventually { nodes.alice.journal.channels[nodes.id]?.isClosed == true }, "the channel was left open")
        await nodes.shutDown()
    }

    /// The peer's deposit lands between the watcher's last look at the chain and its reclaim
    /// at the funding deadline: the chain refuses the reclaim as already funded, and the
    /// channel is funded as agreed, not "funded on other terms" (seen under load, where the
    /// next test then failed now and then).
    @Test func aPeerDepositLandingJustBeforeOurReclaimCountsAsFunded() async throws {
        let nodes = try TwoNodes(on: .local, policy: shortFundingPolicy, wrapAlice: { GatedAdapter($0) })
        try await nodes.openChannel()
        let gated = try #require(nodes.alice.adapter as? GatedAdapter)
        let bob = nodes.bob.adapter
        let (params, opening) = (nodes.params, nodes.opening)
        gated.beforeReclaim.withLock {
            $0 = { _ = try? await bob.deposit(params: params, opening: opening, participant: .second, amount: opening[.second]) }
        }
        await nodes.alice.startWatching()
        try await nodes.alice.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        #expect(await eventually(within: .seconds(20)) { nodes.alice.seen.contains { $0 == .funded(nodes.id) } })
        let failures = nodes.alice.seen.all.filter { if case .failed = $0 { true } else { false } }
        #expect(failures.isEmpty, "\(failures)")
        #expect((try await nodes.onChain())?.isFunded == true)
        #expect(await nodes.alice.watcher.isFunded(nodes.id))
        await nodes.shutDown()
    }

    /// When the peer's deposit does come, the `.funded` event reports it and the deadline
    /// is dropped: nothing is reclaimed later.
    @Test(arguments: ChainBackend.allCases)
    func backgroundFundingCompletedByThePeerIsReportedAndKept(_ backend: ChainBackend) async throws {
        let nodes = try TwoNodes(on: backend, policy: shortFundingPolicy)
        try await nodes.openChannel()
        await nodes.alice.startWatching()
        try await nodes.alice.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        try await nodes.bob.watcher.fundInBackground(nodes.params, opening: nodes.opening)
        #expect(await eventually { nodes.alice.seen.contains { $0 == .funded(nodes.id) } })
        #expect(await nodes.alice.watcher.isFunded(nodes.id))
        try await Task.sleep(for: shortFundingPolicy.fundingTimeout * 3)
        #expect((try await nodes.onChain())?.isFunded == true)
        // Nothing about funding failed (a slow chain call under load may report a retry;
        // that is not what this test is about).
        let fundingFailures = nodes.alice.seen.all.filter { if case .failed(_, let why) = $0 { why.contains("funding") } else { false } }
        #expect(fundingFailures.isEmpty, "\(fundingFailures)")
        await nodes.shutDown()
    }
}
