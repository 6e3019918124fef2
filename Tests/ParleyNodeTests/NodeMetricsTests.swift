import Foundation
import Metrics
import MetricsTestKit
import ParleyChannel
import ParleyCrypto
import ParleyTestSupport
import Testing

@testable import ParleyNode

/// The node records through swift-metrics: a test factory bound while the nodes start
/// (`withMetricsFactory`) sees what they count, without bootstrapping the process.
@Suite struct NodeMetricsTests {
    @Test func aCommittedUpdateAndARejectedOneAreCountedWithTheirLabels() async throws {
        let factory = TestMetrics()
        try await withCluster { cluster in
            let (alice, bob, channel) = try await withMetricsFactory(factory) { try await openPair(cluster) }
            _ = try await peerChannel(channel.id, on: bob)
            let committed = { @Sendable (role: String) in
                factory.counterTotal(label: "parley_updates_committed_total", dimensions: [("role", role)])
            }
            let proposedBefore = committed("proposer")
            let respondedBefore = committed("responder")
            try await channel.pay(10)
            #expect(committed("proposer") == proposedBefore + 1)
            #expect(await eventually { committed("responder") == respondedBefore + 1 })

            bob.node.setUpdateHandler { _ in .reject("closed for business") }
            let error = await nodeError { try await channel.pay(1) }
            #expect(error == .updateFailed(channel.id, .rejected(.declined("closed for business"))))
            let rejected = { @Sendable (by: String, reason: String) in
                factory.counterTotal(label: "parley_updates_rejected_total", dimensions: [("by", by), ("reason", reason)])
            }
            #expect(rejected("peer", "declined") == 1, "Alice counts Bob's answer")
            #expect(rejected("us", "declined") == 1, "Bob counts his own refusal")
            let refused = await nodeError { try await channel.pay(10_000) }
            #expect(refused != nil)
            #expect(rejected("local", "insufficientFunds") == 1)
            #expect(committed("proposer") == proposedBefore + 1, "nothing more committed")
            #expect(factory.counterTotal(label: "parley_journal_appends_total") > 0)
            #expect(factory.timers(label: "parley_journal_fsync_seconds").contains { $0.lastValue != nil })
            _ = alice
        }
    }
}
