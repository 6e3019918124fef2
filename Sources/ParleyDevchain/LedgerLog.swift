import ParleyCrypto
import ParleyFiles
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
package enum LedgerRecord: Equatable, Sendable {
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

    package func encode(to writer: inout WireWriter) {
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

    package init(from reader: inout WireReader) throws(WireError) {
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
package final class LedgerLog {
    static let fileName = "ledger.log"
    static let lockFileName = "devchain.lock"
    static let formatVersion: UInt8 = 3
    package static let header: [UInt8] = Array("PARLEYDC".utf8) + [0, 0, 0, formatVersion]
    package static let recordHeaderBytes = 8
    /// A body larger than this is damage, not a record (the largest transaction is far smaller).
    package static let maxRecordBytes = 256 * 1024

    let path: String
    private let file: DurableFile
    private let lock: LockFile
    private(set) var size: Int

    /// What opening found.
    struct Opened {
        var log: LedgerLog
        var records: [LedgerRecord]
        /// Set when a torn tail was cut off: how many bytes, from which offset.
        var truncated: (offset: Int, bytes: Int)?
    }

    private init(file: DurableFile, lock: LockFile, size: Int) {
        self.path = file.path
        self.file = file
        self.lock = lock
        self.size = size
    }

    deinit {
        file.close()
        lock.release()
    }

    /// Locks `directory` (creating it if missing), reads every record, and truncates a torn tail.
    static func open(directory: String) throws(DevchainStoreError) -> Opened {
        try storing { () throws(FileError) in try FileSystemPaths.createDirectory(directory, intermediates: false) }
        let lock = try lock(directory)
        let path = directory + "/" + fileName
        do throws(DevchainStoreError) {
            let file = try storing { () throws(FileError) in try DurableFile.open(path, .readWrite, options: .create) }
            do throws(DevchainStoreError) {
                return try open(file, lock: lock, directory: directory)
            } catch {
                file.close()
                throw error
            }
        } catch {
            lock.release()
            throw error
        }
    }

    /// Reads `file` whole, starts it over when it holds no full header, and cuts a torn tail.
    private static func open(_ file: DurableFile, lock: LockFile, directory: String) throws(DevchainStoreError) -> Opened {
        let bytes = try storing { () throws(FileError) in try file.readToEnd() }
        var (records, goodEnd) = try parse(bytes, path: file.path)
        var truncated: (Int, Int)?
        try storing { () throws(FileError) in
            if bytes.count < header.count {
                // New, or a crash while writing the header: start the file over.
                try file.truncate(to: 0)
                try file.writeAll(header)
                try file.sync()
                try FileSystemPaths.syncDirectory(directory)
                goodEnd = header.count
                records = []
            } else if goodEnd < bytes.count {
                try file.truncate(to: goodEnd)
                try file.sync()
                truncated = (goodEnd, bytes.count - goodEnd)
            }
            try file.seek(to: goodEnd)
        }
        return Opened(log: LedgerLog(file: file, lock: lock, size: goodEnd), records: records, truncated: truncated)
    }

    /// Appends `record` and fsyncs; when it returns, the record survives a crash.
    func append(_ record: LedgerRecord) throws(DevchainStoreError) {
        let frame = Self.frame(record)
        do throws(DevchainStoreError) {
            try Self.storing { () throws(FileError) in
                try file.writeAll(frame)
                try file.sync()
            }
        } catch {
            // Leave no half record behind for the next append to follow.
            try? file.truncate(to: size)
            try? file.seek(to: size)
            throw error
        }
        size += frame.count
    }

    package static func frame(_ record: LedgerRecord) -> [UInt8] {
        frame(body: record.wireBytes)
    }

    /// A record frame around `body`: length, CRC-32C over the length bytes and the body, body.
    package static func frame(body: [UInt8]) -> [UInt8] {
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
    package static func parse(_ bytes: [UInt8], path: String) throws(DevchainStoreError) -> ([LedgerRecord], Int) {
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

    // MARK: - Files

    private static func lock(_ directory: String) throws(DevchainStoreError) -> LockFile {
        let path = directory + "/" + lockFileName
        let lock: LockFile
        do {
            lock = try LockFile.acquire(path, attempts: 1)
        } catch where LockFile.isBusy(error) {
            let holder = (try? FileSystemPaths.readFile(path, limit: 64)).map { String(decoding: $0, as: UTF8.self) }
                .flatMap { $0.isEmpty ? nil : $0.trimmingNewline } ?? "unknown process"
            throw .locked(directory: directory, holder: holder)
        } catch {
            throw storeError(error)
        }
        try? lock.file.truncate(to: 0)
        try? lock.file.writeAll(Array("pid \(getpid())\n".utf8), atOffset: 0)
        return lock
    }

    /// Runs `body`, turning its `FileError` into the store's error with the same words as before.
    private static func storing<T>(_ body: () throws(FileError) -> T) throws(DevchainStoreError) -> T {
        do {
            return try body()
        } catch {
            throw storeError(error)
        }
    }

    private static func storeError(_ error: FileError) -> DevchainStoreError {
        let names = ["mkdir": "create directory", "flock": "lock"]
        return .io(operation: names[error.operation] ?? error.operation, path: error.path, errno: error.errno)
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

extension String {
    fileprivate var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
