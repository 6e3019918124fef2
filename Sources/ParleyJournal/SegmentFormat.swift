import ParleyFiles
import ParleyWire

/// The on-disk layout of a segment file. See Docs/Journal.md for a byte-level picture.
///
/// ```text
/// header:  "PRLYJRNL" (8) | format version u16 = 3 | reserved u16 = 0 | segment index u64
/// record:  payload length u32 | CRC-32C of payload u32 | payload (a JournalEntry, canonical encoding)
/// padding: zero bytes up to the end of the file (space the writer allocated ahead)
/// ```
/// All integers are big-endian. The writer fills the space after the last record with
/// zeros ahead of time and then overwrites it (Docs/Journal.md, "Preallocation"): a sync
/// after an overwrite of allocated space flushes data only, while a sync after an append
/// must also flush the file's new size. A run of zeros that reaches the end of the file is
/// that padding, not damage; no record starts with zeros only (a record is never empty).
public enum SegmentFormat {
    public static let magic: [UInt8] = Array("PRLYJRNL".utf8)
    /// Version 3 widened amounts to 128 bits (version 2 held `UInt64` balances). A segment of
    /// another version is refused with `JournalError.unsupportedFormat`, never misread.
    public static let version: UInt16 = 3
    public static let headerBytes = 20
    public static let recordHeaderBytes = 8
    /// A snapshot of a channel holding two maximal app-data states still fits.
    public static let maxRecordBytes = 256 * 1024

    public static func fileName(index: UInt64) -> String {
        let digits = String(index)
        return "segment-" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".log"
    }

    /// The index in a segment file name, or nil for any other file.
    public static func index(ofFileName name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".log") else { return nil }
        let digits = name.dropFirst("segment-".count).dropLast(".log".count)
        guard digits.count == 16, digits.allSatisfy(\.isASCII) else { return nil }
        return UInt64(digits)
    }

    public static func header(index: UInt64) -> [UInt8] {
        var writer = WireWriter(reservingCapacity: headerBytes)
        writer.writeFixed(magic)
        writer.write(version)
        writer.write(UInt16(0))
        writer.write(index)
        return writer.bytes
    }

    /// Appends one framed record carrying `payload` to `out`.
    public static func frame(_ payload: [UInt8], into out: inout [UInt8]) {
        // The header goes straight into `out`, with no intermediate buffer: this runs on every append.
        appendBigEndian(UInt32(payload.count), to: &out)
        appendBigEndian(CRC32C.checksum(payload), to: &out)
        out += payload
    }

    private static func appendBigEndian(_ value: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }
}

/// The result of reading one segment.
public struct SegmentScan: Sendable {
    public var entries: [JournalEntry] = []
    /// Bytes from the start of the file up to the end of the last good record.
    public var validLength = 0
    /// Bytes after `validLength` that belong to a write the crash interrupted.
    public var tornBytes = 0
    /// Zero bytes after `validLength` up to the end of the file: space allocated ahead for
    /// records, not damage. A segment has either padding or a torn tail, never both.
    public var paddingBytes = 0
}

extension SegmentFormat {
    /// Reads a segment's records.
    ///
    /// A bad record in the last segment with nothing valid after it is a torn
    /// tail (a write the crash cut short): it is reported in `tornBytes`, not
    /// thrown. A bad record anywhere else — or followed by a valid record —
    /// is corruption of committed history and throws `.corrupted`.
    public static func scan(
        _ bytes: [UInt8], name: String, expectedIndex: UInt64, isLast: Bool
    ) throws(JournalError) -> SegmentScan {
        var scan = SegmentScan()
        guard bytes.count >= headerBytes else {
            guard isLast else { throw .badSegmentHeader(segment: name, reason: "only \(bytes.count) bytes long") }
            scan.tornBytes = bytes.count  // the crash hit while the header was being written
            return scan
        }
        try checkHeader(bytes, name: name, expectedIndex: expectedIndex)
        var offset = headerBytes
        while offset < bytes.count {
            switch record(in: bytes, at: offset) {
            case let .valid(payload, next):
                do { scan.entries.append(try JournalEntry(wireBytes: payload)) } catch {
                    throw .corrupted(segment: name, offset: offset, reason: "checksum matches but the record does not decode: \(error)")
                }
                offset = next
            case let .invalid(reason):
                scan.validLength = offset
                if bytes[offset...].allSatisfy({ $0 == 0 }) {
                    // Allocated ahead and never written (any segment: one whose compaction
                    // a crash interrupted keeps its padding until it is removed).
                    scan.paddingBytes = bytes.count - offset
                    return scan
                }
                guard isLast, !hasValidRecord(in: bytes, after: offset) else {
                    throw .corrupted(segment: name, offset: offset, reason: reason)
                }
                scan.tornBytes = bytes.count - offset
                return scan
            }
        }
        scan.validLength = offset
        return scan
    }

    private static func checkHeader(_ bytes: [UInt8], name: String, expectedIndex: UInt64) throws(JournalError) {
        var reader = WireReader(Array(bytes[0..<headerBytes]))
        do {
            guard try reader.readFixed(magic.count, "magic") == magic else {
                throw JournalError.badSegmentHeader(segment: name, reason: "missing the PRLYJRNL magic")
            }
            let version = try reader.readUInt16("format version")
            guard version == Self.version else {
                throw JournalError.unsupportedFormat(segment: name, version: version, supported: Self.version)
            }
            // Written as zero; anything else is not a segment this build wrote, and reading
            // past it would accept two headers for one segment (found by fuzzing, issue 23).
            let reserved = try reader.readUInt16("reserved")
            guard reserved == 0 else {
                throw JournalError.badSegmentHeader(segment: name, reason: "reserved header bytes are \(reserved), not 0")
            }
            let index = try reader.readUInt64("segment index")
            guard index == expectedIndex else {
                throw JournalError.badSegmentHeader(segment: name, reason: "header says segment \(index), file name says \(expectedIndex)")
            }
        } catch let error as JournalError {
            throw error
        } catch {
            throw .badSegmentHeader(segment: name, reason: "\(error)")
        }
    }

    enum RecordRead {
        case valid(payload: [UInt8], next: Int)
        case invalid(String)
    }

    static func record(in bytes: [UInt8], at offset: Int) -> RecordRead {
        guard bytes.count - offset >= recordHeaderBytes else { return .invalid("record header cut short") }
        let length = Int(readUInt32(bytes, offset))
        let checksum = readUInt32(bytes, offset + 4)
        guard length <= maxRecordBytes else { return .invalid("record length \(length) exceeds \(maxRecordBytes)") }
        // No entry encodes to zero bytes. Without this, eight zero bytes (common in a torn
        // tail: amounts and padding) read as an empty record whose CRC-32C (of nothing) is 0,
        // and a crash mid-append made the journal report corruption instead of truncating
        // the tail, so the node refused to start (found by the simulator's disk, issue 16).
        guard length > 0 else { return .invalid("empty record") }
        let start = offset + recordHeaderBytes
        guard bytes.count - start >= length else { return .invalid("record payload cut short") }
        let payload = Array(bytes[start..<start + length])
        guard CRC32C.checksum(payload) == checksum else { return .invalid("checksum mismatch") }
        return .valid(payload: payload, next: start + length)
    }

    /// Whether any byte offset after `offset` starts a record with a matching checksum.
    private static func hasValidRecord(in bytes: [UInt8], after offset: Int) -> Bool {
        var candidate = offset + 1
        while candidate + recordHeaderBytes <= bytes.count {
            if case .valid = record(in: bytes, at: candidate) { return true }
            candidate += 1
        }
        return false
    }

    private static func readUInt32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
