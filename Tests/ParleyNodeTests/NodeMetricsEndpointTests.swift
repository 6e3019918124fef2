import Foundation
import ParleyCrypto
import ParleyJournal
import ParleyTestSupport
import Testing

/// `parley node --metrics` and graceful shutdown, on real processes.
@Suite struct NodeMetricsEndpointTests {
    /// The port of `parley node: metrics at http://127.0.0.1:PORT/metrics` on stderr.
    static func metricsPort(_ node: NodeProcess) async throws -> UInt16 {
        let parse = { @Sendable () -> UInt16? in
            let line = node.stderr.lines.first { $0.contains("metrics at http://127.0.0.1:") }
            return line.flatMap { $0.split(separator: ":").last?.split(separator: "/").first }.flatMap { UInt16($0) }
        }
        _ = await eventually { parse() != nil }
        guard let port = parse() else { throw NodeCommandFailure("no metrics line on stderr: \(node.stderr.text)") }
        return port
    }

    @Test func aScrapeShowsThePaymentsAndBadRequestsGet400Or404() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let bob = try await world.start("bob", key: SigningKey())
        let alice = try await world.start("alice", key: SigningKey(), extra: ["--metrics", "127.0.0.1:0"])
        let port = try await Self.metricsPort(alice)
        let id = try await world.open(from: alice, to: bob, mine: 50, theirs: 50)
        let paid = try await alice.command("pay \(id.prefix(8)) 2 3", timeout: 20)
        #expect(paid.ok == true, "\(paid.raw)")

        let scrape = try await offPool { try httpGet(port: port, "/metrics") }
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(scrape.prefix(200))")
        #expect(scrape.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(sample("parley_updates_committed_total{role=\"proposer\"}", in: scrape) == 3, "\(scrape)")
        #expect(sample("parley_channels{status=\"open\"}", in: scrape) == 1, "\(scrape)")
        #expect(sample("parley_peer_sessions_up", in: scrape) == 1, "\(scrape)")
        #expect((sample("parley_journal_appends_total", in: scrape) ?? 0) >= 3, "\(scrape)")
        #expect((sample("parley_journal_fsync_seconds_count", in: scrape) ?? 0) >= 3, "\(scrape)")
        #expect((sample("parley_chain_call_duration_seconds_count{call=\"deposit\"}", in: scrape) ?? 0) >= 1, "\(scrape)")

        let missing = try await offPool { try httpGet(port: port, "/other") }
        #expect(missing.hasPrefix("HTTP/1.1 404 "), "\(missing)")
        let garbage = try await offPool { try httpExchange(port: port, "NONSENSE\r\n\r\n") }
        #expect(garbage.hasPrefix("HTTP/1.1 400 "), "\(garbage)")
        let post = try await offPool { try httpExchange(port: port, "POST /metrics HTTP/1.1\r\n\r\n") }
        #expect(post.hasPrefix("HTTP/1.1 405 "), "\(post)")
        #expect(alice.process.isRunning)
        try await alice.quit()
        try await bob.quit()
    }

    /// SIGTERM while payments stream: the node finishes what it journaled, exits 0, and its
    /// journal reopens without a torn tail, holding every payment it reported committed.
    @Test func sigtermDuringPaymentsExitsCleanlyWithEveryAcknowledgedPaymentJournaled() async throws {
        let world = try NodeWorld()
        defer { world.tearDown() }
        let (alice, bob) = try await world.startPair()
        let id = try await world.open(from: alice, to: bob, mine: 500, theirs: 500)
        _ = alice.start("pay \(id.prefix(8)) 1 400")
        let streaming = await eventually { alice.events().filter { $0.event == "committed" }.count >= 20 }
        #expect(streaming, "payments did not start: \(alice.stderr.text)")
        alice.process.signal(SIGTERM)
        let status = try await alice.exitStatus(timeout: 20)
        #expect(status == 0, "stderr: \(alice.stderr.text)")
        let acknowledged = alice.events().filter { $0.event == "committed" && $0.channel == id }.compactMap(\.version).max() ?? 0
        #expect(acknowledged >= 20)

        let journal = try Journal(directory: alice.journal)
        defer { journal.close() }
        #expect(!journal.recovery.truncatedTail)
        let record = try #require(journal.channels.first { $0.key.description == id }?.value, "channel \(id) not in the journal")
        #expect(record.latest.version >= acknowledged, "journal at \(record.latest.version), acknowledged \(acknowledged)")
        try await bob.quit()
    }
}
