import Foundation
import ParleyChannel
import ParleyJournal
import Testing

@Suite struct DurabilityTests {
    private let params = JournalFixtures.params()

    @Test func fsyncHappensBeforeAppendReturns() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        for (index, entry) in JournalFixtures.history(params, count: 4).enumerated() {
            let before = files.syncs
            try journal.appendBlocking([entry])
            #expect(files.syncs == before + 1, "append \(index) returned before its fsync")
        }
    }

    @Test func durabilityNoneNeverSyncsRecords() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .none, fileSystem: files)
        defer { journal.close() }
        let afterOpen = files.syncs
        try journal.appendBlocking(JournalFixtures.history(params, count: 4))
        #expect(files.syncs == afterOpen)
    }

    @Test func concurrentAppendsShareOneSync() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        files.syncDelay = 0.05  // a slow disk: appends arriving meanwhile must wait for the next sync together
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let entries = JournalFixtures.history(params, count: 99)
        try await journal.append([entries[0]])
        let before = files.syncs
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entry in entries.dropFirst() {
                group.addTask { try await journal.append([entry]) }
            }
            try await group.waitForAll()
        }
        let used = files.syncs - before
        #expect(used < 20, "100 concurrent appends took \(used) syncs")
        #expect(journal.channels[params.id]?.latest.version == 99)
    }

    @Test func diskFullFailsTheAppendAndStopsTheJournal() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let entries = JournalFixtures.history(params, count: 3)
        try journal.appendBlocking([entries[0]])
        files.failWritesAfter = files.writes
        #expect(throws: JournalError.diskFull(path: dir.path + "/" + SegmentFormat.fileName(index: 1))) {
            try journal.appendBlocking([entries[1]])
        }
        files.failWritesAfter = nil  // space is back, but the journal must not pretend nothing happened
        #expect(throws: JournalError.self) { try journal.appendBlocking([entries[2]]) }
        #expect(journal.stoppedBecause != nil)
        #expect(journal.channels[params.id]?.latest.isFullySigned == false, "nothing after the failure counts as durable")
    }

    @Test func fsyncErrorIsNeverReportedAsSuccess() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        files.failSyncs = true
        #expect(throws: JournalError.self) { try journal.appendBlocking([JournalFixtures.history(params, count: 0)[0]]) }
        #expect(journal.stoppedBecause != nil)
    }
}

@Suite struct JournaledEngineTests {
    @Test func signatureIsDurableBeforeTheProposalIsHandedOut() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let params = JournalFixtures.params()
        var (alice, openEffects) = try await JournaledEngine.propose(
            params: params, allocation: Allocation(100, 100), key: JournalFixtures.alice, journal: journal)
        #expect(openEffects.count == 1, "only the send is left: \(openEffects)")
        #expect(journal.channels[params.id]?.highestSignedVersion == 0)
        // Pretend the accept arrived, then propose a payment.
        guard case let .send(.openProposal(proposal)) = openEffects[0] else { return }
        let bobJournalDir = TempDirectory()
        defer { bobJournalDir.remove() }
        let bobJournal = try Journal(directory: bobJournalDir.path, durability: .none)
        defer { bobJournal.close() }
        let (_, acceptEffects) = try await JournaledEngine.accept(proposal, key: JournalFixtures.bob, journal: bobJournal)
        guard case let .send(accept)? = acceptEffects.first else { return }
        _ = try await alice.handle(.received(accept))
        let syncsBefore = files.syncs
        let effects = try await alice.handle(.update(1, .pay(amount: 10)))
        #expect(files.syncs == syncsBefore + 1)
        #expect(journal.channels[params.id]?.pending?.version == 1, "journaled before the send was returned")
        #expect(effects.allSatisfy { if case .journal = $0 { false } else { true } })
        #expect(effects.contains { if case .send(.propose) = $0 { true } else { false } })
    }

    @Test func stoppedJournalRefusesToSignAnything() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 0, fileSystem: files)
        defer { journal.close() }
        let bobDir = TempDirectory()
        defer { bobDir.remove() }
        let bobJournal = try Journal(directory: bobDir.path, durability: .none)
        defer { bobJournal.close() }
        var (alice, openEffects) = try await JournaledEngine.propose(
            params: JournalFixtures.params(), allocation: Allocation(100, 100), key: JournalFixtures.alice,
            journal: journal)
        guard case let .send(.openProposal(proposal))? = openEffects.first else { return }
        let (_, acceptEffects) = try await JournaledEngine.accept(proposal, key: JournalFixtures.bob, journal: bobJournal)
        guard case let .send(accept)? = acceptEffects.first else { return }
        _ = try await alice.handle(.received(accept))
        files.failSyncs = true
        await #expect(throws: JournalError.self) { try await alice.handle(.update(1, .pay(amount: 1))) }
        files.failSyncs = false
        let signedBefore = alice.engine.highestSignedVersion
        await #expect(throws: JournalError.self) { try await alice.handle(.update(2, .pay(amount: 1))) }
        #expect(alice.engine.highestSignedVersion == signedBefore, "the engine never saw the input")
    }
}

/// Invariant 1 for versions burned without a committed state (a drill's tampered proposal):
/// the burn is durable, and a restarted engine signs only above it.
@Suite struct ReservedVersionTests {
    @Test func reservedVersionsStayBurnedAcrossARestart() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let params = JournalFixtures.params()
        do {
            let journal = try Journal(directory: dir.path, durability: .fsync)
            defer { journal.close() }
            var (alice, _) = try await JournaledEngine.propose(
                params: params, allocation: Allocation(100, 100), key: JournalFixtures.alice, journal: journal)
            try await alice.reserveVersions(through: 7)
            #expect(alice.engine.highestSignedVersion == 7)
        }
        let reopened = try Journal(directory: dir.path, durability: .fsync)
        defer { reopened.close() }
        let record = try #require(reopened.channels[params.id])
        #expect(record.highestSignedVersion == 7, "recovery counts an aborted version as signed")
        let restored = try JournaledEngine.restore(record, key: JournalFixtures.alice, journal: reopened)
        #expect(restored.engine.highestSignedVersion == 7)
    }
}
