import Foundation
import ParleyChannel
import ParleyJournal
import Testing

/// The writer fills the segment with zeros ahead of its records and then overwrites them,
/// so a record's sync flushes data, not the file's size (Docs/Journal.md, "Preallocation").
/// What must hold: zeros after the last record are padding, never a torn tail or damage;
/// anything else after them still is; and a zero-fill that fails costs only speed.
@Suite struct PreallocationTests {
    private let params = JournalFixtures.params()

    @Test func recordsOverwriteTheZerosWrittenAheadAndSurviveReopening() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let entries = JournalFixtures.history(params, count: 4)  // opened, then versions 0...4
        let journal = try Journal(directory: dir.path, durability: .fsync)
        try journal.appendBlocking(Array(entries[0..<3]))
        // The zero-fill follows the commit; `close` waits for the writer.
        journal.close()
        #expect(journal.statistics.preallocations == 1)
        let name = try #require(dir.segments.first)
        let allocated = dir.bytes(of: name).count
        #expect(allocated >= Journal.defaultPreallocationBytes, "the segment holds the zeros written ahead")

        let reopened = try Journal(directory: dir.path, durability: .fsync)
        #expect(reopened.recovery.recordsReplayed == 3)
        #expect(reopened.recovery.truncatedTail == false, "zeros ahead are not a torn tail")
        try reopened.appendBlocking(Array(entries[3...]))
        reopened.close()
        #expect(reopened.statistics.preallocations == 0, "plenty of zeros were left")
        #expect(dir.bytes(of: name).count == allocated, "the records went into the allocated space; the file did not grow")

        let again = try Journal(directory: dir.path, durability: .fsync)
        defer { again.close() }
        #expect(again.recovery.recordsReplayed == 6)
        #expect(again.recovery.channels[params.id]?.latest.version == 4)
        #expect(again.recovery.truncatedTail == false)
    }

    @Test func eachAppendIsSyncedBeforeItReturnsAndZeroFillsAreNotCountedAsRecordSyncs() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        let journal = try Journal(directory: dir.path, durability: .fsync, preallocationBytes: 4096, fileSystem: files)
        defer { journal.close() }
        for (index, entry) in JournalFixtures.history(params, count: 40).enumerated() {
            try journal.appendBlocking([entry])
            let stats = journal.statistics
            #expect(stats.syncs == index + 1, "append \(index) returned before its sync")
            #expect(files.syncs >= stats.syncs)
        }
        // 40 records of a few hundred bytes overrun 4 KiB several times.
        #expect(journal.statistics.preallocations >= 2)
    }

    @Test func aZeroFillThatFailsCostsSpeedNotRecords() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let files = InstrumentedFileSystem()
        files.failZeroFills = true
        let entries = JournalFixtures.history(params, count: 3)  // five records
        let journal = try Journal(directory: dir.path, durability: .fsync, fileSystem: files)
        for entry in entries { try journal.appendBlocking([entry]) }
        journal.close()
        #expect(journal.statistics.preallocations == 0)
        #expect(journal.stoppedBecause == nil, "a failed zero-fill does not stop the journal")
        let reopened = try Journal(directory: dir.path, durability: .fsync)
        defer { reopened.close() }
        #expect(reopened.recovery.recordsReplayed == 5)
        #expect(reopened.recovery.truncatedTail == false)
    }

    @Test func zerosAfterTheLastRecordArePaddingInAnySegment() throws {
        let records = try Self.segment(JournalFixtures.history(params, count: 1))  // three records
        let padded = records + [UInt8](repeating: 0, count: 777)
        for isLast in [true, false] {
            let scan = try SegmentFormat.scan(padded, name: "s", expectedIndex: 1, isLast: isLast)
            #expect(scan.entries.count == 3)
            #expect(scan.validLength == records.count)
            #expect(scan.paddingBytes == 777)
            #expect(scan.tornBytes == 0)
        }
    }

    @Test func anythingButZerosAfterTheLastRecordIsStillTornOrCorrupt() throws {
        let records = try Self.segment(JournalFixtures.history(params, count: 1))  // three records
        // A record cut short inside the zeros (its first bytes landed, the rest did not).
        let next = try Self.segment(Array(JournalFixtures.history(params, count: 2).suffix(1)), header: false)
        let cut = records + next.prefix(next.count / 2) + [UInt8](repeating: 0, count: 500)
        let torn = try SegmentFormat.scan(cut, name: "s", expectedIndex: 1, isLast: true)
        #expect(torn.entries.count == 3)
        #expect(torn.paddingBytes == 0)
        #expect(torn.tornBytes == cut.count - records.count)
        #expect(throws: JournalError.self, "a segment that is not the last cannot be torn") {
            try SegmentFormat.scan(cut, name: "s", expectedIndex: 1, isLast: false)
        }
        // A stray byte at the very end of the zeros: not padding.
        var stray = records + [UInt8](repeating: 0, count: 64)
        stray[stray.count - 1] = 1
        let strayScan = try SegmentFormat.scan(stray, name: "s", expectedIndex: 1, isLast: true)
        #expect(strayScan.paddingBytes == 0 && strayScan.tornBytes == 64)
    }

    @Test func aRecordTornInsideTheZerosIsTruncatedAndTheJournalGoesOn() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let entries = JournalFixtures.history(params, count: 2)  // four records
        let journal = try Journal(directory: dir.path, durability: .fsync)
        try journal.appendBlocking(Array(entries[0..<3]))
        journal.close()
        let name = try #require(dir.segments.first)
        var bytes = dir.bytes(of: name)
        let records = try Self.segment(Array(entries[0..<3]))
        #expect(Array(bytes.prefix(records.count)) == records)
        // The crash landed half of the fourth record in the zeros.
        let fourth = try Self.segment([entries[3]], header: false)
        bytes.replaceSubrange(records.count..<records.count + fourth.count / 2, with: fourth.prefix(fourth.count / 2))
        dir.write(bytes, to: name)

        let reopened = try Journal(directory: dir.path, durability: .fsync)
        #expect(reopened.recovery.truncatedTail)
        #expect(reopened.recovery.recordsReplayed == 3)
        #expect(dir.bytes(of: name).count == records.count, "truncated to the last whole record")
        try reopened.appendBlocking([entries[3]])
        reopened.close()
        let again = try Journal(directory: dir.path, durability: .fsync)
        defer { again.close() }
        #expect(again.recovery.recordsReplayed == 4)
        #expect(again.recovery.truncatedTail == false)
    }

    /// A segment's bytes: the header of segment 1 (unless `header` is false) and `entries` framed.
    static func segment(_ entries: [JournalEntry], header: Bool = true) throws -> [UInt8] {
        var bytes = header ? SegmentFormat.header(index: 1) : []
        for entry in entries { SegmentFormat.frame(entry.wireBytes, into: &bytes) }
        return bytes
    }
}
