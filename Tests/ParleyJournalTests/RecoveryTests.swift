import Foundation
import ParleyChannel
import ParleyJournal
import ParleyWire
import Testing

@Suite struct FramingTests {
    @Test func segmentFileNamesRoundTrip() {
        #expect(SegmentFormat.fileName(index: 42) == "segment-0000000000000042.log")
        #expect(SegmentFormat.index(ofFileName: "segment-0000000000000042.log") == 42)
        #expect(SegmentFormat.index(ofFileName: "segment-42.log") == nil)
        #expect(SegmentFormat.index(ofFileName: "LOCK") == nil)
    }

    @Test func entriesRoundTripThroughASegment() throws {
        let params = JournalFixtures.params()
        var entries = JournalFixtures.history(params, count: 3)
        entries.append(JournalEntry(channelID: params.id, body: .dispute(.registered(version: 3, deadline: 99))))
        entries.append(JournalEntry(channelID: params.id, body: .closed))
        var bytes = SegmentFormat.header(index: 1)
        for entry in entries { SegmentFormat.frame(entry.wireBytes, into: &bytes) }
        let scan = try SegmentFormat.scan(bytes, name: "s", expectedIndex: 1, isLast: true)
        #expect(scan.entries == entries)
        #expect(scan.validLength == bytes.count)
        #expect(scan.tornBytes == 0)
    }

    /// Appends encode each entry straight into the frame buffer; the file must hold exactly
    /// what `SegmentFormat.frame` makes of each entry's encoding, in order.
    @Test func appendedRecordsAreFramedExactlyAsSegmentFormatFramesThem() throws {
        let directory = TempDirectory("framing")
        defer { directory.remove() }
        let params = JournalFixtures.params()
        let entries = JournalFixtures.history(params, count: 4)
        let journal = try Journal(directory: directory.path, durability: .none)
        try journal.appendBlocking([entries[0]])
        try journal.appendBlocking(Array(entries[1...]))
        journal.close()
        var expected = SegmentFormat.header(index: 1)
        for entry in entries { SegmentFormat.frame(entry.wireBytes, into: &expected) }
        #expect(directory.segments.count == 1)
        #expect(directory.segments.first.map(directory.bytes(of:)) == expected)
    }

    @Test func headerOfAnotherSegmentIsRefused() {
        let bytes = SegmentFormat.header(index: 2)
        #expect(throws: JournalError.self) { try SegmentFormat.scan(bytes, name: "s", expectedIndex: 1, isLast: true) }
    }
}

@Suite struct RecoveryTests {
    /// Writes `entries` to a fresh journal and closes it.
    private func journal(with entries: [JournalEntry], in dir: TempDirectory) throws {
        let journal = try Journal(directory: dir.path, durability: .none)
        try journal.appendBlocking(entries)
        journal.close()
    }

    @Test func recoveryRebuildsLatestHighestSignedPendingAndDispute() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let params = JournalFixtures.params()
        var entries = JournalFixtures.history(params, count: 2)
        let v3 = JournalFixtures.state(params, version: 3, 97, 103)
        let v4 = JournalFixtures.state(params, version: 4, 96, 104)
        entries.append(JournalEntry(.signed(JournalFixtures.signed(v3, by: [.first])), channelID: params.id))
        entries.append(JournalEntry(.aborted(version: 3), channelID: params.id))
        entries.append(JournalEntry(.signed(JournalFixtures.signed(v4, by: [.first])), channelID: params.id))
        entries.append(JournalEntry(channelID: params.id, body: .dispute(.registered(version: 2, deadline: 500))))
        try journal(with: entries, in: dir)

        let reopened = try Journal(directory: dir.path, durability: .none)
        defer { reopened.close() }
        let record = try #require(reopened.recovery.channels[params.id])
        #expect(record.latest.version == 2)
        #expect(record.latest.isFullySigned)
        #expect(record.highestSignedVersion == 4)
        // `pending` is the state signed at the version after `latest` (3), kept although it
        // was aborted: a move on chain from version 2 reuses it (issue 16).
        #expect(record.pending?.state == v3)
        #expect(record.dispute == .registered(version: 2, deadline: 500))
        #expect(reopened.recovery.truncatedTail == false)
        #expect(reopened.recovery.recordsReplayed == entries.count)
    }

    @Test func tornTailIsTruncatedAtEveryByteOffsetOfTheLastRecord() throws {
        let source = TempDirectory("torn-source")
        defer { source.remove() }
        let params = JournalFixtures.params()
        let entries = JournalFixtures.history(params, count: 3)
        try journal(with: entries, in: source)
        let name = try #require(source.segments.first)
        let full = source.bytes(of: name)
        let lastLength = entries.last!.wireBytes.count + SegmentFormat.recordHeaderBytes
        let lastStart = full.count - lastLength
        for cut in lastStart..<full.count {
            let dir = TempDirectory("torn")
            defer { dir.remove() }
            try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
            dir.write(Array(full[0..<cut]), to: name)
            let journal = try Journal(directory: dir.path, durability: .none)
            // A cut that kept only zero bytes of the record (the high bytes of its length)
            // reads as zeros allocated ahead: nothing to truncate, the next record overwrites it.
            let torn = full[lastStart..<cut].contains { $0 != 0 }
            #expect(journal.recovery.recordsReplayed == entries.count - 1, "cut at \(cut)")
            #expect(journal.recovery.truncatedTail == torn, "cut at \(cut)")
            #expect(journal.recovery.channels[params.id]?.latest.version == 2, "cut at \(cut)")
            #expect(dir.bytes(of: name).count == (torn ? lastStart : cut), "the torn bytes are gone, cut at \(cut)")
            // The journal keeps working after the repair.
            try journal.appendBlocking([entries.last!])
            journal.close()
            let again = try Journal(directory: dir.path, durability: .none)
            #expect(again.recovery.channels[params.id]?.latest.version == 3)
            #expect(again.recovery.truncatedTail == false)
            again.close()
        }
    }

    @Test func bitFlipBeforeTheEndIsCorruptionNotATornTail() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let params = JournalFixtures.params()
        try journal(with: JournalFixtures.history(params, count: 3), in: dir)
        let name = try #require(dir.segments.first)
        var bytes = dir.bytes(of: name)
        for offset in stride(from: SegmentFormat.headerBytes, to: bytes.count - 300, by: 37) {
            bytes[offset] ^= 0x10
            dir.write(bytes, to: name)
            #expect(throws: JournalError.self, "flip at \(offset)") { _ = try Journal(directory: dir.path) }
            #expect(dir.bytes(of: name) == bytes, "a refused journal is left untouched")
            bytes[offset] ^= 0x10
        }
        dir.write(bytes, to: name)
        let healthy = try Journal(directory: dir.path, durability: .none)
        #expect(healthy.recovery.channels[params.id]?.latest.version == 3)
        healthy.close()
    }

    @Test func aSecondProcessCannotOpenTheSameJournal() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let first = try Journal(directory: dir.path, durability: .none)
        defer { first.close() }
        #expect(throws: JournalError.locked(directory: dir.path + "/LOCK")) { _ = try Journal(directory: dir.path) }
    }

    @Test func compactionKeepsRecoveryProportionalToLiveData() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let channels = (1...3).map { JournalFixtures.params(nonce: UInt8($0)) }
        let journal = try Journal(directory: dir.path, durability: .none, maxSegmentBytes: 16 * 1024)
        for params in channels { try journal.appendBlocking([JournalFixtures.history(params, count: 0)[0]]) }
        let updates: UInt64 = 3000
        for version in 0...updates {
            for params in channels {
                let state = JournalFixtures.state(params, version: version, 100 - Amount(version % 100), 100 + Amount(version % 100))
                try journal.appendBlocking([JournalEntry(.committed(JournalFixtures.signed(state, by: [.first, .second])), channelID: params.id)])
            }
        }
        let before = journal.channels
        let compactions = journal.statistics.compactions
        journal.close()
        #expect(compactions > 10)
        let reopened = try Journal(directory: dir.path, durability: .none, maxSegmentBytes: 16 * 1024)
        defer { reopened.close() }
        #expect(reopened.recovery.channels == before)
        #expect(dir.segments.count == 1)
        // 9,000 updates were written; recovery reads one segment's worth, not the history.
        #expect(reopened.recovery.recordsReplayed < 100, "replayed \(reopened.recovery.recordsReplayed)")
    }
}
