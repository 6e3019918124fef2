import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySubprocess
import ParleyWire

#if canImport(Glibc)
import Glibc
#endif

/// The records bench appends: one channel per writer, committed versions 1, 2, 3... of each.
package struct JournalBenchWorkload: Sendable {
    /// Both sides' opening balance: large enough that a long run's payments never exhaust it.
    static let openingBalance: Amount = 1_000_000

    var openings: [JournalEntry]
    var writers: [[JournalEntry]]

    /// Signs every state up front (on all cores), so the measurement is the journal alone.
    package static func make(writers: Int, records: Int) async throws -> JournalBenchWorkload {
        let alice = SigningKey()
        let bob = SigningKey()
        var openings: [JournalEntry] = []
        var counts: [(ChannelParams, Int)] = []
        for writer in 0..<writers {
            let params = try ChannelParams.random(proposer: alice.publicKey, responder: bob.publicKey)
            let funding = Allocation(openingBalance, openingBalance)
            openings.append(JournalEntry(.opened(params, funding: funding), channelID: params.id))
            counts.append((params, records / writers + (writer < records % writers ? 1 : 0)))
        }
        let histories = await withTaskGroup(of: (Int, [JournalEntry]).self) { group in
            for (index, (params, count)) in counts.enumerated() {
                group.addTask { (index, history(of: params, count: count, keys: [alice, bob])) }
            }
            var histories = [[JournalEntry]](repeating: [], count: writers)
            for await (index, entries) in group { histories[index] = entries }
            return histories
        }
        return JournalBenchWorkload(openings: openings, writers: histories)
    }

    private static func history(of params: ChannelParams, count: Int, keys: [SigningKey]) -> [JournalEntry] {
        (1...UInt64(count)).map { version in
            let paid = Amount(version % 1000)
            let state = ChannelState(
                channelID: params.id, version: version,
                allocation: Allocation(openingBalance - paid, openingBalance + paid))
            let signed = SignedState(state: state, signatures: keys.map { state.signed(by: $0) })
            return JournalEntry(.committed(signed), channelID: params.id)
        }
    }

    package func run(in directory: String, durability: Durability) async throws -> JournalBenchResult {
        let journal = try Journal(directory: directory, durability: durability)
        defer { journal.close() }
        try await journal.append(openings)
        let before = journal.statistics
        let total = writers.reduce(0) { $0 + $1.count }
        let start = ContinuousClock.now
        let progress = isatty(STDERR_FILENO) != 0
            ? Task { await JournalBenchProgress.show(journal, baseline: before.records, total: total, start: start) } : nil
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entries in writers {
                group.addTask {
                    for entry in entries { try await journal.append([entry]) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Reporting.seconds(start.duration(to: .now))
        progress?.cancel()
        await progress?.value
        let after = journal.statistics
        return JournalBenchResult(
            writers: writers.count, records: after.records - before.records, seconds: seconds,
            syncs: after.syncs - before.syncs, durability: durability)
    }
}

/// A `\r`-updated progress line on stderr, at most ten times a second, once a run lasts half a second.
private enum JournalBenchProgress {
    static let interval = Duration.milliseconds(100)
    static let quietPeriod = 0.5

    static func show(_ journal: Journal, baseline: Int, total: Int, start: ContinuousClock.Instant) async {
        await Terminal.showProgressLine(every: interval) {
            let elapsed = Reporting.seconds(start.duration(to: .now))
            guard elapsed >= quietPeriod else { return nil }
            let done = journal.statistics.records - baseline
            return "\(done)/\(total) records, \(Int(Double(done) / elapsed)) records/s"
        }
    }
}

/// What `parley journal bench` prints.
package struct JournalBenchResult: Encodable {
    var writers: Int
    var records: Int
    var seconds: Double
    var recordsPerSecond: Double
    var syncs: Int
    /// Nil without fsync: there are no syncs to share.
    var recordsPerSync: Double?
    var durability: String

    init(writers: Int, records: Int, seconds: Double, syncs: Int, durability: Durability) {
        self.writers = writers
        self.records = records
        self.seconds = Reporting.rounded(seconds, digits: 6)
        recordsPerSecond = Reporting.rounded(seconds > 0 ? Double(records) / seconds : 0, digits: 1)
        self.syncs = syncs
        recordsPerSync = syncs > 0 ? Reporting.rounded(Double(records) / Double(syncs), digits: 2) : nil
        self.durability = durability.rawValue
    }

    enum CodingKeys: String, CodingKey {
        case writers, records, seconds, recordsPerSecond, syncs, recordsPerSync, durability
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(writers, forKey: .writers)
        try container.encode(records, forKey: .records)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(recordsPerSecond, forKey: .recordsPerSecond)
        try container.encode(syncs, forKey: .syncs)
        try container.encode(recordsPerSync, forKey: .recordsPerSync)
        try container.encode(durability, forKey: .durability)
    }

    package var text: String {
        let perSync = recordsPerSync.map { "\(Reporting.plural(syncs, "fsync")), \($0) records per sync" }
            ?? "no fsync (durability none: not crash-safe)"
        return """
            \(Reporting.plural(records, "record")) from \(Reporting.plural(writers, "writer")) in \(String(format: "%.3f", seconds)) s: \
            \(Int(recordsPerSecond)) records/s
            \(perSync)
            """
    }
}
