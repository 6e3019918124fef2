#if canImport(Glibc)
import Glibc
#endif
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySim
import Testing

/// The journal on the simulator's disk: what a crash keeps, what it tears, and that a
/// crashed life cannot write into the next one.
@Suite struct SimulatedDiskTests {
    static let directory = "/node/journal"
    static let firstSegment = directory + "/" + SegmentFormat.fileName(index: 1)

    /// An inline journal on `disk`'s current incarnation.
    static func journal(
        on disk: SimulatedDisk, durability: Durability = .fsync, maxSegmentBytes: Int = Journal.defaultMaxSegmentBytes
    ) throws(JournalError) -> Journal {
        // Zeros written 512 bytes ahead: crashes land inside, at the edge of and past the
        // allocated space (the default 1 MiB would only make every sync copy a megabyte).
        try Journal(
            directory: directory, durability: durability, maxSegmentBytes: maxSegmentBytes, preallocationBytes: 512,
            fileSystem: disk.fileSystem(), writer: .inline)
    }

    /// The journal overwrites the zeros it wrote ahead, so the disk keeps writes at their
    /// offsets: a crash keeps a prefix of the pending writes' bytes in the order written.
    @Test func aCrashKeepsAPrefixOfTheWritesInTheOrderTheyWereMade() throws {
        var outcomes: Set<[UInt8]> = []
        for seed in UInt64(0)..<200 {
            let disk = SimulatedDisk()
            let fileSystem = disk.fileSystem()
            try fileSystem.createDirectory("/d")
            let fd = try fileSystem.openForWriting("/d/f", create: true)
            try fileSystem.syncDirectory("/d")
            try fileSystem.write(fd, [1, 2, 3, 4], at: 0, path: "/d/f")
            try fileSystem.sync(fd, path: "/d/f")
            try fileSystem.write(fd, [9, 9], at: 1, path: "/d/f")  // over synced bytes
            try fileSystem.write(fd, [7], at: 6, path: "/d/f")  // past the end: a gap of zeros
            #expect(try fileSystem.readFile("/d/f") == [1, 9, 9, 4, 0, 0, 7], "the process reads its own writes")
            var random = SeededRandom(seed: seed)
            disk.crash(tearing: &random)
            let kept = try #require(disk.contents(of: "/d/f")?.durable)
            #expect([[1, 2, 3, 4], [1, 9, 3, 4], [1, 9, 9, 4], [1, 9, 9, 4, 0, 0, 7]].contains(kept), "seed \(seed): \(kept)")
            outcomes.insert(kept)
        }
        #expect(outcomes.count == 4, "every prefix happens: \(outcomes)")
    }

    @Test func fsyncedRecordsSurviveACrash() throws {
        let disk = SimulatedDisk()
        let journal = try Self.journal(on: disk)
        let entries = try DiskFixtures.openings(5)
        for entry in entries { try journal.appendBlocking([entry]) }
        #expect(journal.statistics.syncs == entries.count)
        var random = SeededRandom(seed: 1)
        disk.crash(tearing: &random)
        journal.close()  // a no-op on the crashed incarnation

        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        #expect(Set(reopened.recovery.channels.keys) == Set(entries.map(\.channelID)))
        #expect(!reopened.recovery.truncatedTail)
        #expect(disk.statistics.bytesLost == 0, "everything was synced")
    }

    @Test func unsyncedRecordsAreLostInACrash() async throws {
        let disk = SimulatedDisk()
        let journal = try Self.journal(on: disk, durability: .none)
        let entries = try DiskFixtures.openings(5)
        for entry in entries { try await journal.append([entry]) }
        #expect(journal.channels.count == entries.count, "applied once written")
        #expect(try disk.fileSystem().readFile(Self.firstSegment).count > SegmentFormat.headerBytes, "visible before the crash")
        disk.crash()

        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        #expect(reopened.recovery.channels.isEmpty)
        #expect(!reopened.recovery.truncatedTail)
        #expect(disk.statistics.bytesLost > 0)
        #expect(disk.contents(of: Self.firstSegment)?.durable == SegmentFormat.header(index: 1))
    }

    /// Unsynced appends (and, with small segments, compactions between them), then a crash
    /// that tears: reopening never finds corruption and recovers a prefix of the appends.
    @Test func tornTailsAreTruncatedNeverCorruption() throws {
        let entries = try DiskFixtures.openings(41)  // up to 40 appended, one more after the crash
        var tornTails = 0
        var truncations = 0
        for seed in UInt64(0)..<500 {
            var random = SeededRandom(seed: seed)
            let disk = SimulatedDisk()
            let maxSegmentBytes = Int.random(in: 1500...8000, using: &random)
            let journal = try Self.journal(on: disk, durability: .none, maxSegmentBytes: maxSegmentBytes)
            let appended = Int.random(in: 1...entries.count - 1, using: &random)
            for entry in entries.prefix(appended) { try journal.appendBlocking([entry]) }
            disk.crash(tearing: &random)
            tornTails += disk.statistics.tornTails

            let reopened = try Self.journal(on: disk, maxSegmentBytes: maxSegmentBytes)
            let recovered = reopened.recovery.channels
            #expect(
                Set(recovered.keys) == Set(entries.prefix(recovered.count).map(\.channelID)) && recovered.count <= appended,
                "seed \(seed): recovered \(recovered.count) channels, not a prefix of the \(appended) appended")
            if reopened.recovery.truncatedTail {
                truncations += 1
                #expect(disk.statistics.tornTails > 0, "seed \(seed): a truncated tail the crash did not tear")
            }
            // The next life writes on from the recovered prefix.
            try reopened.appendBlocking([entries[recovered.count]])
            reopened.close()
        }
        #expect(tornTails > 50, "the seeds tore only \(tornTails) tails")
        #expect(
            truncations > 50,
            "only \(truncations) reopenings found a torn record to truncate")
    }

    /// A crash at any operation — mid-append, mid-compaction, while opening — with the
    /// unsynced bytes torn: every acknowledged append survives, and what survives is a prefix.
    @Test func crashAtAnyOperationKeepsEveryAcknowledgedAppend() throws {
        let entries = try DiskFixtures.openings(30)
        var crashedWhileOpening = 0
        var truncations = 0
        for seed in UInt64(0)..<500 {
            var random = SeededRandom(seed: seed)
            let disk = SimulatedDisk()
            let maxSegmentBytes = Int.random(in: 1000...4000, using: &random)
            disk.scheduleCrash(afterOperations: Int.random(in: 0...120, using: &random), tearingSeed: random.next())
            var acknowledged = 0
            var attempted = 0
            do {
                let journal = try Self.journal(on: disk, maxSegmentBytes: maxSegmentBytes)
                defer { journal.close() }
                for entry in entries {
                    attempted += 1
                    try journal.appendBlocking([entry])
                    acknowledged += 1
                }
            } catch {
                if attempted == 0 { crashedWhileOpening += 1 }
            }
            if disk.incarnation == 1 { disk.crash(tearing: &random) }  // every append made it: crash now

            let reopened = try Self.journal(on: disk, maxSegmentBytes: maxSegmentBytes)
            defer { reopened.close() }
            let recovered = reopened.recovery.channels
            #expect(
                Set(recovered.keys) == Set(entries.prefix(recovered.count).map(\.channelID)),
                "seed \(seed): the recovered channels are not a prefix of the appends")
            #expect(
                (acknowledged...attempted).contains(recovered.count),
                "seed \(seed): recovered \(recovered.count), acknowledged \(acknowledged), attempted \(attempted)")
            if reopened.recovery.truncatedTail { truncations += 1 }
        }
        #expect(crashedWhileOpening > 0 && truncations > 0, "opening crashes \(crashedWhileOpening), truncations \(truncations)")
    }

    /// A torn record cut just after eight zero bytes (here the opener-only funding's second
    /// amount, `UInt64(0)`) must be truncated like any torn tail. It is not yet:
    /// `SegmentFormat.record(in:at:)` reads eight zero bytes as a valid empty record (length 0,
    /// and CRC-32C of nothing is 0), so `scan` believes a valid record follows the tear and
    /// throws `.corrupted`, and the node would refuse to start. No entry encodes to zero
    /// bytes, so `record(in:at:)` now refuses length 0 (found by this disk, issue 16).
    @Test func eightZeroBytesInATornTailAreNotARecord() throws {
        let disk = SimulatedDisk()
        let kept = try DiskFixtures.openings(1)[0]
        let torn = try DiskFixtures.openings(2, funding: Allocation(200, 0))[1]
        let journal = try Self.journal(on: disk)
        try journal.appendBlocking([kept])
        try journal.appendBlocking([torn])
        journal.close()
        let bytes = try #require(disk.contents(of: Self.firstSegment)?.durable)
        let keptLength = bytes[SegmentFormat.headerBytes..<SegmentFormat.headerBytes + 4].reduce(0) { $0 << 8 | Int($1) }
        let tornStart = SegmentFormat.headerBytes + SegmentFormat.recordHeaderBytes + keptLength
        let zeros = try #require(
            (tornStart + SegmentFormat.recordHeaderBytes..<bytes.count - 8).first { bytes[$0..<$0 + 8].allSatisfy { $0 == 0 } })
        try disk.fileSystem().truncate(Self.firstSegment, to: zeros + 8)  // the write torn just after them

        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        #expect(reopened.recovery.truncatedTail)
        #expect(Set(reopened.recovery.channels.keys) == [kept.channelID])
    }

    @Test func aStaleHandleCannotWriteIntoTheNextLife() throws {
        let disk = SimulatedDisk()
        let stale = disk.fileSystem()
        let journal = try Self.journal(on: disk)
        let entries = try DiskFixtures.openings(3)
        try journal.appendBlocking([entries[0]])
        disk.crash()
        #expect(throws: JournalError.io(operation: "read", path: Self.firstSegment, errno: EIO)) {
            try stale.readFile(Self.firstSegment)
        }

        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        let before = disk.statistics.writes
        #expect(throws: JournalError.io(operation: "write", path: Self.firstSegment, errno: EIO)) {
            try journal.appendBlocking([entries[1]])
        }
        #expect(journal.stoppedBecause != nil)
        #expect(throws: JournalError.stopped(after: JournalError.io(operation: "write", path: Self.firstSegment, errno: EIO).description)) {
            try journal.appendBlocking([entries[2]])
        }
        #expect(disk.statistics.writes == before, "the crashed journal wrote nothing")
        journal.close()  // must not release the new life's lock or descriptors
        #expect(throws: JournalError.io(operation: "flock", path: Self.directory + "/LOCK", errno: EWOULDBLOCK)) {
            try Self.journal(on: disk)
        }
        try reopened.appendBlocking([entries[1]])
        #expect(Set(reopened.channels.keys) == Set(entries.prefix(2).map(\.channelID)))
    }

    @Test func inlineWriterKeepsTheJournalsRules() async throws {
        let disk = SimulatedDisk()
        let entries = try DiskFixtures.openings(40)
        let journal = try Self.journal(on: disk, maxSegmentBytes: 1000)
        try await journal.append([entries[0]])
        #expect(throws: JournalError.channelExists(entries[0].channelID)) { try journal.appendBlocking([entries[0]]) }
        for entry in entries.dropFirst() { try journal.appendBlocking([entry]) }
        #expect(journal.statistics.compactions > 0)
        #expect(disk.fileNames(in: Self.directory).filter { SegmentFormat.index(ofFileName: $0) != nil }.count == 1)
        #expect(disk.fileNames(in: Self.directory).contains("LOCK"))
        journal.close()
        #expect(disk.openFileCount == 0, "close released the segment and the lock")
        #expect(throws: JournalError.closed) { try journal.appendBlocking([entries[0]]) }

        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        #expect(reopened.recovery.segments == 1, "LOCK is not a segment")
        #expect(reopened.recovery.channels.count == entries.count)
    }

    @Test func anInjectedFailureStopsTheJournal() throws {
        let disk = SimulatedDisk()
        let entries = try DiskFixtures.openings(3)
        let journal = try Self.journal(on: disk)
        defer { journal.close() }
        try journal.appendBlocking([entries[0]])
        disk.injectFailure(.sync)
        let failure = JournalError.io(operation: "fdatasync", path: Self.firstSegment, errno: EIO)
        #expect(throws: failure) { try journal.appendBlocking([entries[1]]) }
        #expect(journal.stoppedBecause == failure)
        #expect(throws: JournalError.stopped(after: failure.description)) { try journal.appendBlocking([entries[2]]) }
        #expect(journal.channels.count == 1, "nothing after the failure counts as durable")
        #expect(disk.contents(of: Self.firstSegment)?.pending.isEmpty == false, "the failed sync left its bytes pending")

        disk.injectFailure(.write, errno: ENOSPC)
        let fileSystem = disk.fileSystem()
        let fd = try fileSystem.openForWriting(Self.firstSegment, create: false)
        defer { fileSystem.close(fd) }
        #expect(throws: JournalError.diskFull(path: Self.firstSegment)) { try fileSystem.write(fd, [1], at: 0, path: Self.firstSegment) }
        #expect(disk.statistics.injectedFailures == 2)
    }

    @Test func directoryEntriesAreDurableOnlyOnceTheDirectoryIsSynced() throws {
        let disk = SimulatedDisk()
        let fileSystem = disk.fileSystem()
        try fileSystem.createDirectory("/d")
        let kept = try fileSystem.openForWriting("/d/kept", create: true)
        try fileSystem.write(kept, [1, 2, 3], at: 0, path: "/d/kept")
        try fileSystem.sync(kept, path: "/d/kept")
        try fileSystem.syncDirectory("/d")
        let lost = try fileSystem.openForWriting("/d/lost", create: true)
        try fileSystem.write(lost, [4], at: 0, path: "/d/lost")
        try fileSystem.sync(lost, path: "/d/lost")
        try fileSystem.remove("/d/kept")
        #expect(try fileSystem.listDirectory("/d") == ["lost"])
        #expect(disk.durableFileNames(in: "/d") == ["kept"])
        disk.crash()
        #expect(try disk.fileSystem().listDirectory("/d") == ["kept"])
        #expect(disk.contents(of: "/d/kept")?.durable == [1, 2, 3])
        #expect(disk.statistics.filesVanished == 1 && disk.statistics.removalsUndone == 1)
        #expect(disk.openFileCount == 0 && disk.incarnation == 2)
    }

    @Test func theSameSeedTearsTheSameWay() throws {
        func tornLength(seed: UInt64) throws -> Int? {
            let disk = SimulatedDisk()
            let journal = try Self.journal(on: disk, durability: .none)
            try journal.appendBlocking(DiskFixtures.openings(8))
            var random = SeededRandom(seed: seed)
            disk.crash(tearing: &random)
            journal.close()
            return disk.contents(of: Self.firstSegment)?.durable.count
        }
        for seed in UInt64(0)..<20 { #expect(try tornLength(seed: seed) == tornLength(seed: seed)) }
    }

    @Test func theThreadWriterWorksOnTheSimulatedDiskToo() async throws {
        let disk = SimulatedDisk()
        let entries = try DiskFixtures.openings(20)
        let journal = try Journal(directory: Self.directory, fileSystem: disk.fileSystem(), writer: .thread)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entry in entries { group.addTask { try await journal.append([entry]) } }
            try await group.waitForAll()
        }
        journal.close()
        disk.crash()
        let reopened = try Self.journal(on: disk)
        defer { reopened.close() }
        #expect(reopened.recovery.channels.count == entries.count)
    }
}

/// Journal entries for the disk tests: `opened` records of distinct channels between two
/// fixed keys (the journal tests' `JournalFixtures` live in a target this one cannot import).
enum DiskFixtures {
    static let alice = key(1)
    static let bob = key(2)

    static func key(_ byte: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: byte, count: SigningKey.seedByteCount))) ?? SigningKey()
    }

    /// `count` channels opened with `funding`, the n-th with a nonce drawn from seed n (random
    /// bytes, as real nonces are).
    static func openings(_ count: Int, funding: Allocation = Allocation(100, 100)) throws -> [JournalEntry] {
        try (0..<count).map { index in
            var random = SeededRandom(seed: UInt64(index))
            let nonce = (0..<ChannelParams.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &random) }
            let params = try ChannelParams(participants: [alice.publicKey, bob.publicKey], nonce: nonce, challengeDuration: 60)
            return JournalEntry(.opened(params, funding: funding), channelID: params.id)
        }
    }
}
