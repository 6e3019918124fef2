import Dispatch
import Foundation
import ParleyChannel
import ParleyTestSupport
import Testing

@testable import ParleyJournal

/// Group commit across concurrent appenders: how appends share syncs, and that a lone
/// appender never waits for company.
@Suite struct GroupCommitTests {
    private let params = JournalFixtures.params()

    @Test func manyConcurrentAppendersShareFarFewerSyncsThanAppends() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let entries = JournalFixtures.history(params, count: 999)
        try await journal.append([entries[0]])
        let before = (syncs: files.syncs, stats: journal.statistics)
        let appenders = 200
        let perAppender = 5
        // Each appender waits for its append before the next, as a channel does.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    for round in 0..<perAppender {
                        try await journal.append([entries[1 + appender * perAppender + round]])
                    }
                }
            }
            try await group.waitForAll()
        }
        let appends = appenders * perAppender
        let syncs = files.syncs - before.syncs
        let stats = journal.statistics
        #expect(stats.records - before.stats.records == appends)
        #expect(stats.syncs - before.stats.syncs == syncs, "Stats.syncs counts every record sync")
        #expect(stats.batches - before.stats.batches == syncs, "one sync per commit")
        #expect(syncs * 5 <= appends, "\(appends) appends from \(appenders) appenders took \(syncs) syncs")
        print("[group commit] \(appends) appends, \(syncs) syncs, \(stats.gatheringWaits - before.stats.gatheringWaits) gathering waits")
    }

    @Test func aSharedCommitMakesTheNextOneWaitForAsManyAppenders() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        // A long window so the test never depends on the machine's speed: the gaps
        // between the appenders below are a small fraction of it. (3 s was not enough
        // once: a loaded 2-core run stalled the appenders' tasks for longer.)
        let journal = try Journal(
            directory: dir.path, durability: .fsync, groupCommitWindow: .seconds(8), preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let entries = JournalFixtures.history(params, count: 20)

        // Commit 1 carries one batch; three more queue behind its (held) sync, so commit 2
        // carries three.
        let gate = DispatchSemaphore(value: 0)
        files.syncGate = gate
        let syncsBefore = files.syncCalls
        let first = Task { try await journal.append([entries[0]]) }
        #expect(await eventually { files.syncCalls == syncsBefore + 1 })
        let queued = (1...3).map { index in Task { try await journal.append([entries[index]]) } }
        #expect(await eventually { journal.queuedBatchCount == 3 })
        files.syncGate = nil
        gate.signal()
        try await first.value
        for task in queued { try await task.value }
        let afterShared = journal.statistics

        // Three appenders that arrive one by one, well apart: the writer waits for all
        // three and commits them together.
        var late: [Task<Void, Error>] = []
        for index in 4...6 {
            late.append(Task { try await journal.append([entries[index]]) })
            try await Task.sleep(for: .milliseconds(50))
        }
        for task in late { try await task.value }
        let afterGathered = journal.statistics
        #expect(afterGathered.batches - afterShared.batches == 1, "three appenders took \(afterGathered.batches - afterShared.batches) commits")
        #expect(afterGathered.gatheringWaits - afterShared.gatheringWaits == 1)

        // A lone appender: the first commit may still wait for company (the last commit
        // was shared), then never again, and every append gets its own sync.
        let syncs = files.syncs
        for index in 7...16 { try await journal.append([entries[index]]) }
        let afterLone = journal.statistics
        #expect(files.syncs - syncs == 10)
        #expect(afterLone.batches - afterGathered.batches == 10)
        #expect(afterLone.gatheringWaits - afterGathered.gatheringWaits <= 1)
        #expect(journal.channels[params.id]?.latest.version == 15)
    }

    @Test func aLoneAppenderNeverWaitsForCompany() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(
            directory: dir.path, durability: .fsync, groupCommitWindow: .seconds(30), preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let syncsAtOpen = files.syncs
        for entry in JournalFixtures.history(params, count: 19) { try journal.appendBlocking([entry]) }
        let stats = journal.statistics
        #expect(stats.gatheringWaits == 0)
        #expect(stats.batches == 21)
        #expect(files.syncs - syncsAtOpen == 21, "one sync per append")
    }

    /// Polls every 2 ms for up to 10 s.
}
