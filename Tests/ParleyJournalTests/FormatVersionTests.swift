import Foundation
import ParleyChannel
import ParleyJournal
import Testing

/// A journal written in another format (the 64-bit amounts of format 2, or a newer one) is
/// refused by name before anything in it is read: its balances would be misread otherwise.
@Suite struct FormatVersionTests {
    private let params = JournalFixtures.params()

    /// A journal of three records in `dir`: its one segment's name and path.
    private func writeJournal(in dir: TempDirectory) throws -> (segment: String, path: String) {
        do {
            let journal = try Journal(directory: dir.path)
            try journal.appendBlocking(JournalFixtures.history(params, count: 3))
            journal.close()
        }
        let segment = try #require(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasPrefix("segment-") })
        return (segment, dir.path + "/" + segment)
    }

    @Test(arguments: [UInt16(2), UInt16(1), UInt16(4)])
    func aSegmentOfAnotherFormatIsRefusedByName(version: UInt16) throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (segment, path) = try writeJournal(in: dir)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes[8] == 0 && bytes[9] == UInt8(SegmentFormat.version))
        bytes[8] = UInt8(version >> 8)
        bytes[9] = UInt8(version & 0xff)
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        #expect(throws: JournalError.unsupportedFormat(segment: segment, version: version, supported: 3)) {
            _ = try Journal(directory: dir.path)
        }
        let message = JournalError.unsupportedFormat(segment: segment, version: version, supported: 3).description
        if version < 3 {
            #expect(message.contains("written by an older Parley (64-bit amounts)"))
            #expect(message.contains("new journal directory"))
        } else {
            #expect(message.contains("newer than this build reads"))
        }
    }

    /// Found by fuzzing (issue 23): the two reserved header bytes were read and ignored, so a
    /// segment had many headers. A journal whose reserved bytes are not zero is not one this
    /// build wrote, and opening it names the segment and the bytes.
    @Test func aSegmentWhoseReservedHeaderBytesAreNotZeroIsRefused() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (segment, path) = try writeJournal(in: dir)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes[10] == 0 && bytes[11] == 0)
        bytes[10] = 0x11
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        #expect(throws: JournalError.badSegmentHeader(segment: segment, reason: "reserved header bytes are 4352, not 0")) {
            _ = try Journal(directory: dir.path)
        }
    }
}
