import Dispatch
import Foundation
import ParleyChannel
import ParleyLocks
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
        // Appenders are tasks on the cooperative pool here, which other tests running at the
        // same time can starve to one thread: a lone appender's inline commit would then run
        // each task's appends in turn (see `Journal.commitsInlineWhenIdle`). The writer
        // thread's group commit is what this test checks; the test after it checks that
        // concurrent appenders share syncs with inline commits on.
        let journal = try Journal(
            directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files, commitsInlineWhenIdle: false)
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
        print("[group commit] \(appends) appends, \(syncs) syncs, \(stats.gatheringWaits - before.stats.gatheringWaits) gathering waits, \(stats.inlineCommits - before.stats.inlineCommits) inline commits")
    }

    @Test func concurrentAppendersShareSyncsWhileALoneAppenderCommitsInline() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(
            directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files, commitsInlineWhenIdle: true)
        defer { journal.close() }
        let appenders = 8
        let perAppender = 50
        // One channel per appender, each on a thread of its own (not the pool's), waiting
        // for each append before the next, as a channel does.
        let histories = (0..<appenders).map { n in
            JournalFixtures.history(JournalFixtures.params(nonce: UInt8(n + 1)), count: UInt64(perAppender - 2))
        }
        let before = (syncs: files.syncs, stats: journal.statistics)
        let failures = Locked(0)
        let done = DispatchGroup()
        for history in histories {
            done.enter()
            Thread {
                defer { done.leave() }
                for entry in history {
                    do { try journal.appendBlocking([entry]) } catch { failures.withLock { $0 += 1 } }
                }
            }.start()
        }
        done.wait()
        let appends = appenders * perAppender
        let stats = journal.statistics
        let syncs = files.syncs - before.syncs
        #expect(failures.withLock { $0 } == 0)
        #expect(stats.records - before.stats.records == appends)
        #expect(stats.batches - before.stats.batches == syncs, "one sync per commit, inline or not")
        #expect(syncs * 2 <= appends, "\(appends) appends from \(appenders) threads took \(syncs) syncs")
        print("[group commit, inline on] \(appends) appends, \(syncs) syncs, \(stats.inlineCommits - before.stats.inlineCommits) inline commits")
        for (n, history) in histories.enumerated() {
            #expect(journal.channels[JournalFixtures.params(nonce: UInt8(n + 1)).id]?.latest == history.last.flatMap {
                if case let .engine(.committed(signed)) = $0.body { signed } else { nil }
            })
        }
    }

    @Test func aLoneAppenderCommitsOnItsOwnThreadAndCloseWaitsForIt() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(
            directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files, commitsInlineWhenIdle: true)
        let entries = JournalFixtures.history(params, count: 10)
        let syncsAtOpen = files.syncs
        // A channel's appends are a signature or a round trip apart, never back to back.
        for (index, entry) in entries.dropLast().enumerated() {
            Thread.sleep(forTimeInterval: 0.001)
            try journal.appendBlocking([entry])
            #expect(files.syncs == syncsAtOpen + index + 1, "append \(index) returned before its sync")
        }
        let stats = journal.statistics
        if Journal.machineAllowsInlineCommits {
            #expect(stats.inlineCommits == entries.count - 1, "every append of a lone appender commits on its own thread")
        }
        #expect(stats.gatheringWaits == 0)

        // An inline commit held in its sync: close() waits for it, and the record is durable.
        let gate = DispatchSemaphore(value: 0)
        files.syncGate = gate
        let calls = files.syncCalls
        let appended = DispatchSemaphore(value: 0)
        let appendResult = Locked<Result<Void, JournalError>?>(nil)
        Thread {
            let result = Result { () throws(JournalError) in try journal.appendBlocking([entries[entries.count - 1]]) }
            appendResult.withLock { $0 = result }
            appended.signal()
        }.start()
        while files.syncCalls == calls { Thread.sleep(forTimeInterval: 0.002) }
        let closed = DispatchSemaphore(value: 0)
        Thread {
            journal.close()
            closed.signal()
        }.start()
        #expect(closed.wait(timeout: .now() + 0.3) == .timedOut, "close() returned while a commit was in its sync")
        files.syncGate = nil
        gate.signal()
        #expect(appended.wait(timeout: .now() + 10) == .success)
        #expect(closed.wait(timeout: .now() + 10) == .success)
        #expect(throws: Never.self) { try appendResult.withLock { $0 }?.get() }
        let reopened = try Journal(directory: dir.path, durability: .fsync)
        defer { reopened.close() }
        #expect(reopened.recovery.channels[params.id]?.latest.version == 10, "the last append, held in its sync while close() waited")
    }

    /// Inline commits are off by default: a journal alone cannot tell a lone appender from
    /// appenders taking turns on a starved pool. Its owner turns them on with a gate.
    @Test func inlineCommitsAreOffByDefaultAndTheOwnersGateDecides() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0)
        defer { journal.close() }
        let entries = JournalFixtures.history(params, count: 13)
        for entry in entries[0..<5] { try journal.appendBlocking([entry]) }
        #expect(journal.statistics.inlineCommits == 0, "off by default: every batch went to the writer thread")
        let allowed = Locked(false)
        journal.enableInlineCommits { allowed.withLock { $0 } }
        #expect(journal.commitsInlineWhenIdle == Journal.machineAllowsInlineCommits)
        for entry in entries[5..<10] { try journal.appendBlocking([entry]) }
        #expect(journal.statistics.inlineCommits == 0, "the gate said no")
        allowed.withLock { $0 = true }
        for entry in entries[10...] { try journal.appendBlocking([entry]) }
        if Journal.machineAllowsInlineCommits {
            #expect(journal.statistics.inlineCommits == entries.count - 10, "the gate said yes")
        }
        #expect(journal.statistics.batches == entries.count)
        #expect(journal.channels[params.id]?.latest.version == 13)
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
