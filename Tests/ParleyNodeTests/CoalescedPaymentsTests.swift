import ParleyChannel
import ParleyJournal
import ParleyWire
import Synchronization
import ParleyTestSupport
import Testing

@testable import ParleyNode

/// Payments waiting together on one channel ride in one update (`NodePolicy.maxPaymentsPerUpdate`,
/// Docs/Node.md "Concurrent payments"): real nodes over loopback TCP with fsync'd journals.
/// What must hold whatever the batching: every `pay` returns once, with a fully-signed state
/// that includes its payment, or fails with the answer it would have got alone.
@Suite struct CoalescedPaymentsTests {
    @Test func manyPayersOnOneChannelShareUpdatesAndEachReturnsAStateThatIncludesItsPayment() async throws {
        try await withCluster { cluster in
            let (_, bob, channel) = try await openPair(cluster, deposit: 500, theirs: 0)
            let bobChannel = try await peerChannel(channel.id, on: bob)
            let asked = Atomic<Int>(0)
            bob.node.setUpdateHandler { _ in
                asked.add(1, ordering: .relaxed)
                return .accept
            }
            let payers = 64
            let returned = try await withThrowingTaskGroup(of: SignedState.self) { group in
                for _ in 0..<payers { group.addTask { try await channel.pay(1) } }
                var all: [SignedState] = []
                for try await state in group { all.append(state) }
                return all
            }
            #expect(returned.count == payers)
            let latest = try channel.status.latest
            #expect(latest.state.allocation == Allocation(436, 64))
            for state in returned {
                #expect(state.isFullySigned)
                #expect(state.version <= latest.version)
            }
            // Each update carried at least one payment, and the states returned name every
            // update that committed: their balances add up to all 64 payments.
            let updates = Set(returned.map(\.version))
            #expect(updates.count == asked.load(ordering: .relaxed), "the handler was asked once per update")
            #expect(updates.count < payers, "payments waiting together rode together (\(updates.count) updates)")
            #expect(latest.version == UInt64(updates.count), "no version burned on a healthy link")
            let synced = await eventually { (try? bobChannel.status.latest) == latest }
            #expect(synced)
        }
    }

    @Test func aBatchThePeerRefusesIsSplitSoEachPaymentGetsItsOwnAnswer() async throws {
        try await withCluster { cluster in
            let (_, bob, channel) = try await openPair(cluster, deposit: 500, theirs: 0)
            // Bob takes at most 5 per update: a batch of small payments is refused as a whole,
            // then each of them is accepted alone; a payment of 10 is refused alone too.
            let largest = Mutex<Amount>(0)
            bob.node.setUpdateHandler { update in
                largest.withLock { $0 = max($0, update.amountToMe) }
                return update.amountToMe <= 5 ? .accept : .reject("at most 5 per update")
            }
            try await channel.pay(1)  // so the next ones queue behind a proposal in flight
            let amounts: [Amount] = [2, 2, 10, 2, 2, 2]
            let outcomes = await withTaskGroup(of: (Amount, Result<SignedState, NodeError>).self) { group in
                for amount in amounts {
                    group.addTask {
                        do throws(NodeError) { return (amount, .success(try await channel.pay(amount))) } catch {
                            return (amount, .failure(error))
                        }
                    }
                }
                var all: [(Amount, Result<SignedState, NodeError>)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            for (amount, outcome) in outcomes {
                switch (amount, outcome) {
                case (10, .failure(let error)):
                    #expect(error == .updateFailed(channel.id, .rejected(.declined("at most 5 per update"))))
                case (10, .success):
                    Issue.record("the payment of 10 was accepted by a handler that takes at most 5")
                case (_, .failure(let error)):
                    Issue.record("a payment of \(amount) failed: \(error)")
                case (_, .success):
                    break
                }
            }
            #expect(try channel.status.myBalance == 500 - 1 - 10)
            #expect(largest.withLock { $0 } >= 10)
        }
    }

    /// One channel paying alone: its records are committed by its own task, with no hand-off
    /// to the journal's thread and back (Docs/Journal.md, "A lone appender commits on its
    /// own thread"), on both sides.
    @Test func aLoneChannelCommitsItsRecordsOnItsOwnThread() async throws {
        try await withCluster { cluster in
            let (alice, bob, channel) = try await openPair(cluster, deposit: 500, theirs: 0)
            _ = try await peerChannel(channel.id, on: bob)
            let before = (alice.node.journal.statistics.inlineCommits, bob.node.journal.statistics.inlineCommits)
            for _ in 0..<30 { try await channel.pay(1) }
            let after = (alice.node.journal.statistics.inlineCommits, bob.node.journal.statistics.inlineCommits)
            #expect(try channel.status.latest.state.allocation == Allocation(470, 30))
            if Journal.machineAllowsInlineCommits {
                #expect(after.0 > before.0, "alice's records all went through the journal's thread")
                #expect(after.1 > before.1, "bob's records all went through the journal's thread")
            }
        }
    }

    @Test func withCoalescingOffEveryPaymentIsItsOwnUpdate() async throws {
        var policy = apiPolicy()
        policy.maxPaymentsPerUpdate = 1
        try await withCluster { cluster in
            let (_, bob, channel) = try await openPair(cluster, deposit: 500, theirs: 0, alicePolicy: policy)
            let asked = Atomic<Int>(0)
            bob.node.setUpdateHandler { _ in
                asked.add(1, ordering: .relaxed)
                return .accept
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 { group.addTask { _ = try await channel.pay(1) } }
                try await group.waitForAll()
            }
            #expect(asked.load(ordering: .relaxed) == 16)
            #expect(try channel.status.latest.version == 16)
            #expect(try channel.status.myBalance == 484)
        }
    }
}
