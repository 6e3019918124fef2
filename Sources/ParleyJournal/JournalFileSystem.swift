#if canImport(Glibc)
import Glibc
#endif
import ParleyFiles
import SystemPackage

/// The file operations the journal needs, behind a protocol so tests can
/// count syncs and inject failures (ENOSPC, EIO) without a real broken disk.
public protocol JournalFileSystem: Sendable {
    func createDirectory(_ path: String) throws(JournalError)
    func listDirectory(_ path: String) throws(JournalError) -> [String]
    func readFile(_ path: String) throws(JournalError) -> [UInt8]
    /// Opens for writing at explicit offsets; with `create`, the file must not exist yet.
    func openForWriting(_ path: String, create: Bool) throws(JournalError) -> Int32
    /// Writes all of `bytes` at `offset` (`pwrite`): over bytes already there, or past the
    /// end, which grows the file. The journal writes only at or after its last record.
    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(JournalError)
    /// Returns only when the file's data, and its size, are on stable storage.
    func sync(_ fd: Int32, path: String) throws(JournalError)
    /// fsync of the directory, making file creations and removals durable.
    func syncDirectory(_ path: String) throws(JournalError)
    func truncate(_ path: String, to length: Int) throws(JournalError)
    func remove(_ path: String) throws(JournalError)
    /// Takes an exclusive advisory lock on `path`, held until the process exits or `close`.
    func lockExclusively(_ path: String) throws(JournalError) -> Int32
    func close(_ fd: Int32)
}

/// The real thing: `ParleyFiles`, whose errors become `JournalError`s (ENOSPC on a write or
/// sync is `.diskFull`; a lock still busy after its retries is `.locked`).
public struct POSIXJournalFileSystem: JournalFileSystem {
    public init() {}

    public func createDirectory(_ path: String) throws(JournalError) {
        try journaling { () throws(FileError) in try FileSystemPaths.createDirectory(path) }
    }

    public func listDirectory(_ path: String) throws(JournalError) -> [String] {
        try journaling { () throws(FileError) in try FileSystemPaths.listDirectory(path) }
    }

    public func readFile(_ path: String) throws(JournalError) -> [UInt8] {
        try journaling { () throws(FileError) in try FileSystemPaths.readFile(path) }
    }

    /// Not `O_APPEND`: Linux ignores `pwrite`'s offset on a file opened for appending, and
    /// the journal overwrites the zeros it allocated ahead (Docs/Journal.md, "Preallocation").
    public func openForWriting(_ path: String, create: Bool) throws(JournalError) -> Int32 {
        try journaling { () throws(FileError) in
            try DurableFile.open(path, .writeOnly, options: create ? [.create, .exclusiveCreate] : []).rawValue
        }
    }

    public func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(JournalError) {
        try journaling { () throws(FileError) in try file(fd, path).writeAll(bytes, atOffset: offset) }
    }

    /// fdatasync, not fsync: fdatasync(2) flushes the data plus the metadata needed to read
    /// it back, which includes the file size (the man page: "a change to the file size ...
    /// would require a metadata flush"). What it skips, mtime and atime, recovery never
    /// reads. After an append the two cost the same here (p50 ≈ 140–165 µs for a 220-byte
    /// append on this machine's ext4); after an overwrite of space already allocated and
    /// written, fdatasync has no size to flush and costs about half (≈ 75 µs), which is why
    /// the journal writes its zeros ahead.
    public func sync(_ fd: Int32, path: String) throws(JournalError) {
        try journaling { () throws(FileError) in try file(fd, path).syncData() }
    }

    /// fsync of the directory itself: a new or removed entry is directory metadata.
    public func syncDirectory(_ path: String) throws(JournalError) {
        try journaling { () throws(FileError) in try FileSystemPaths.syncDirectory(path) }
    }

    public func truncate(_ path: String, to length: Int) throws(JournalError) {
        try journaling { () throws(FileError) in try FileSystemPaths.truncate(path, to: length) }
    }

    public func remove(_ path: String) throws(JournalError) {
        try journaling { () throws(FileError) in try FileSystemPaths.remove(path) }
    }

    public func lockExclusively(_ path: String) throws(JournalError) -> Int32 {
        try journaling { () throws(FileError) in try LockFile.acquire(path).file.rawValue }
    }

    public func close(_ fd: Int32) {
        file(fd, "").close()
    }

    private func file(_ fd: Int32, _ path: String) -> DurableFile {
        DurableFile(FileDescriptor(rawValue: fd), path: path)
    }

    /// Runs `body`, turning its `FileError` into the journal's error with the same words as before.
    private func journaling<T>(_ body: () throws(FileError) -> T) throws(JournalError) -> T {
        do {
            return try body()
        } catch where LockFile.isBusy(error) {
            throw .locked(directory: error.path)
        } catch where error.errno == ENOSPC && ["write", "fdatasync", "fsync"].contains(error.operation) {
            throw .diskFull(path: error.path)
        } catch {
            throw .io(operation: error.operation, path: error.path, errno: error.errno)
        }
    }
}
