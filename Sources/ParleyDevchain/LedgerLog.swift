import ParleyCrypto
import ParleySettlement
import ParleyWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One durable fact of the devchain's history.
enum LedgerRecord: Equatable, Sendable {
    /// An accepted transaction, as `caller`, applied at chain time `time`.
    case transaction(ChainTransaction, caller: PublicKey, time: ChainTime)
    /// The clock reached `time` (manual advances, and block time revealed to clients).
    case clock(ChainTime)

    var time: ChainTime {
        switch self {
        case let .transaction(_, _, time), let .clock(time): return time
        }
    }
}

extension LedgerRecord: WireCodable {
    private enum Tag: UInt8 { case transaction = 1, clock }

    func encode(to writer: inout WireWriter) {
        switch self {
        case let .transaction(tx, caller, time):
            writer.write(Tag.transaction.rawValue)
            time.encode(to: &writer)
            caller.encode(to: &writer)
            tx.encode(to: &writer)
        case let .clock(time):
            writer.write(Tag.clock.rawValue)
            time.encode(to: &writer)
        }
    }

    init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("record kind")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "record kind", tag: raw) }
        let time = try ChainTime(from: &reader)
        switch tag {
        case .transaction:
            let caller = try PublicKey(from: &reader)
            self = .transaction(try ChainTransaction(from: &reader), caller: caller, time: time)
        case .clock:
            self = .clock(time)
        }
    }
}

/// Why the devchain's data directory cannot be used.
public enum DevchainStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another process holds the directory's lock.
    case locked(directory: String, holder: String)
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// A record before the last one is damaged: acknowledged history would be lost, so the daemon refuses to start.
    case corrupt(path: String, offset: Int, reason: String)
    /// A persisted transaction no longer applies (the file was edited, or the rules changed).
    case replayFailed(path: String, record: Int, reason: String)

    public var description: String {
        switch self {
        case let .locked(directory, holder):
            return "\(directory) is in use by another devchain (\(holder)); stop it or choose another --data directory"
        case let .io(operation, path, code):
            return "\(operation) \(path): \(String(cString: strerror(code)))"
        case let .corrupt(path, offset, reason):
            return "\(path) is corrupt at byte \(offset) (\(reason)); records after it would be lost, so the devchain will not start. Restore the file from a backup, or move it away to start an empty chain"
        case let .replayFailed(path, record, reason):
            return "\(path): record \(record) does not replay (\(reason)); the file was changed or written by an incompatible version"
        }
    }
}

/// The devchain's append-only ledger file, `DIR/ledger.log`, and the lock on `DIR`.
///
/// ```text
/// file   = magic "PARLEYDC" | version u32 (3; version 1 held 64-bit amounts, version 2 was
///          replayed by rules under which a final registration paid nobody) | record*
/// record = length u32 | crc32c u32 (over the length bytes and the body) | body (length bytes)
/// body   = 1 transaction(time u64, caller PublicKey, ChainTransaction) | 2 clock(time u64)
/// ```
///
/// `append` returns only after the record is written and fsync'd: the daemon answers a
/// request only after that, so an acknowledged change survives SIGKILL and power loss.
/// Opening truncates a torn tail (an incomplete or bad-checksum *last* record, what a crash
/// mid-append leaves) and refuses damage anywhere before it. Not thread-safe: the server
/// uses it under its lock.
final class LedgerLog {
    static let fileName = "ledger.log"
    static let lockFileName = "devchain.lock"
    static let formatVersion: UInt8 = 3
    static let header: [UInt8] = Array("PARLEYDC".utf8) + [0, 0, 0, formatVersion]
    static let recordHeaderBytes = 8
    /// A body larger than this is damage, not a record (the largest transaction is far smaller).
    static let maxRecordBytes = 256 * 1024

    let path: String
    private let fd: Int32
    private let lockFD: Int32
    private(set) var size: Int

    /// What opening found.
    struct Opened {
        var log: LedgerLog
        var records: [LedgerRecord]
        /// Set when a torn tail was cut off: how many bytes, from which offset.
        var truncated: (offset: Int, bytes: Int)?
    }

    private init(path: String, fd: Int32, lockFD: Int32, size: Int) {
        self.path = path
        self.fd = fd
        self.lockFD = lockFD
        self.size = size
    }

    deinit {
        close(fd)
        close(lockFD)  // releases the flock
    }

    /// Locks `directory` (creating it if missing), reads every record, and truncates a torn tail.
    static func open(directory: String) throws(DevchainStoreError) -> Opened {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw .io(operation: "create directory", path: directory, errno: errno)
        }
        let lockFD = try lock(directory)
        let path = directory + "/" + fileName
        let fd = posixOpen(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            close(lockFD)
            throw .io(operation: "open", path: path, errno: code)
        }
        do throws(DevchainStoreError) {
            let bytes = try readAll(fd, path: path)
            var (records, goodEnd) = try parse(bytes, path: path)
            var truncated: (Int, Int)?
            if bytes.count < header.count {
                // New, or a crash while writing the header: start the file over.
                try check(ftruncate(fd, 0), "truncate", path)
                try writeAll(fd, header, path: path)
                try check(fsync(fd), "fsync", path)
                try syncDirectory(directory)
                goodEnd = header.count
                records = []
            } else if goodEnd < bytes.count {
                try check(ftruncate(fd, off_t(goodEnd)), "truncate", path)
                try check(fsync(fd), "fsync", path)
                truncated = (goodEnd, bytes.count - goodEnd)
            }
            guard lseek(fd, off_t(goodEnd), SEEK_SET) >= 0 else {
                throw DevchainStoreError.io(operation: "seek", path: path, errno: errno)
            }
            let log = LedgerLog(path: path, fd: fd, lockFD: lockFD, size: goodEnd)
            return Opened(log: log, records: records, truncated: truncated)
        } catch {
            close(fd)
            close(lockFD)
            throw error
        }
    }

    /// Appends `record` and fsyncs; when it returns, the record survives a crash.
    func append(_ record: LedgerRecord) throws(DevchainStoreError) {
        let frame = Self.frame(record)
        do throws(DevchainStoreError) {
            try Self.writeAll(fd, frame, path: path)
            try Self.check(fsync(fd), "fsync", path)
        } catch {
            // Leave no half record behind for the next append to follow.
            _ = ftruncate(fd, off_t(size))
            _ = lseek(fd, off_t(size), SEEK_SET)
            throw error
        }
        size += frame.count
    }

    static func frame(_ record: LedgerRecord) -> [UInt8] {
        let body = record.wireBytes
        var lengthWriter = WireWriter()
        lengthWriter.write(UInt32(body.count))
        let length = lengthWriter.bytes
        var writer = WireWriter(reservingCapacity: body.count + recordHeaderBytes)
        writer.writeFixed(length)
        writer.write(CRC32C.checksum(length + body))
        writer.writeFixed(body)
        return writer.bytes
    }

    /// The records of a whole file and the offset where the good ones end.
    static func parse(_ bytes: [UInt8], path: String) throws(DevchainStoreError) -> ([LedgerRecord], Int) {
        guard bytes.count >= header.count else {
            guard Array(header.prefix(bytes.count)) == bytes else {
                throw .corrupt(path: path, offset: 0, reason: "not a devchain ledger (bad magic)")
            }
            return ([], bytes.count)
        }
        guard Array(bytes[0..<header.count]) == header else {
            let magicBytes = header.count - 4
            guard Array(bytes[0..<magicBytes]) == Array(header[0..<magicBytes]) else {
                throw .corrupt(path: path, offset: 0, reason: "not a devchain ledger (bad magic)")
            }
            let version = readUInt32(bytes, at: magicBytes)
            throw .corrupt(
                path: path, offset: 0,
                reason: version < UInt32(formatVersion)
                    ? "ledger format \(version) was written by an older Parley (format 1: 64-bit amounts; format 2: a final "
                        + "registration paid nobody, so its withdrawals would not replay); this build reads format "
                        + "\(formatVersion). Start the devchain with a new --data directory"
                    : "ledger format \(version) is newer than this build reads (\(formatVersion)); use a newer parley")
        }
        var records: [LedgerRecord] = []
        var offset = header.count
        while offset < bytes.count {
            let remaining = bytes.count - offset
            // A crash mid-append damages only the last record, and no record is longer than this.
            let couldBeTornTail = remaining <= recordHeaderBytes + maxRecordBytes
            guard remaining >= recordHeaderBytes else { return (records, offset) }
            let length = Int(readUInt32(bytes, at: offset))
            let checksum = readUInt32(bytes, at: offset + 4)
            guard length > 0, length <= maxRecordBytes, recordHeaderBytes + length <= remaining else {
                if couldBeTornTail { return (records, offset) }
                throw .corrupt(path: path, offset: offset, reason: "record length \(length) is impossible")
            }
            let end = offset + recordHeaderBytes + length
            guard CRC32C.checksum(bytes[offset..<offset + 4] + bytes[offset + recordHeaderBytes..<end]) == checksum else {
                if end == bytes.count { return (records, offset) }
                throw .corrupt(path: path, offset: offset, reason: "checksum mismatch")
            }
            do {
                records.append(try LedgerRecord(wireBytes: Array(bytes[offset + recordHeaderBytes..<end])))
            } catch {
                throw .corrupt(path: path, offset: offset, reason: "record does not decode: \(error)")
            }
            offset = end
        }
        return (records, offset)
    }

    // MARK: - POSIX

    private static func lock(_ directory: String) throws(DevchainStoreError) -> Int32 {
        let path = directory + "/" + lockFileName
        let fd = posixOpen(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = (try? readAll(fd, path: path)).map { String(decoding: $0.prefix(64), as: UTF8.self) }
                .flatMap { $0.isEmpty ? nil : $0.trimmingNewline } ?? "unknown process"
            close(fd)
            if code == EWOULDBLOCK { throw .locked(directory: directory, holder: holder) }
            throw .io(operation: "lock", path: path, errno: code)
        }
        let pid = Array("pid \(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    private static func readAll(_ fd: Int32, path: String) throws(DevchainStoreError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var offset: off_t = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .io(operation: "read", path: path, errno: errno) }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
            offset += off_t(count)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(DevchainStoreError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return write(fd, base + written, buffer.count - written)
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .io(operation: "write", path: path, errno: errno) }
            written += count
        }
    }

    private static func syncDirectory(_ directory: String) throws(DevchainStoreError) {
        let fd = posixOpen(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: directory, errno: errno) }
        defer { close(fd) }
        try check(fsync(fd), "fsync", directory)
    }

    private static func check(_ status: Int32, _ operation: String, _ path: String) throws(DevchainStoreError) {
        guard status == 0 else { throw .io(operation: operation, path: path, errno: errno) }
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

extension String {
    fileprivate var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}

private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, flags, mode)
    #elseif canImport(Musl)
    Musl.open(path, flags, mode)
    #else
    Darwin.open(path, flags, mode)
    #endif
}
