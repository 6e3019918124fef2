#if canImport(Glibc)
import Glibc
#endif

/// The file operations the journal needs, behind a protocol so tests can
/// count syncs and inject failures (ENOSPC, EIO) without a real broken disk.
public protocol JournalFileSystem: Sendable {
    func createDirectory(_ path: String) throws(JournalError)
    func listDirectory(_ path: String) throws(JournalError) -> [String]
    func readFile(_ path: String) throws(JournalError) -> [UInt8]
    /// Opens for appending; with `create`, the file must not exist yet.
    func openForAppend(_ path: String, create: Bool) throws(JournalError) -> Int32
    func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws(JournalError)
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

/// The real thing: POSIX calls, retried on EINTR.
public struct POSIXJournalFileSystem: JournalFileSystem {
    /// How long a busy lock is retried: 100 × 10 ms.
    static let lockAttempts = 100
    static let lockRetryMicroseconds: UInt32 = 10_000

    public init() {}

    public func createDirectory(_ path: String) throws(JournalError) {
        var components: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: false) {
            components.append(String(part))
            let prefix = components.joined(separator: "/")
            guard !prefix.isEmpty else { continue }
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw .io(operation: "mkdir", path: prefix, errno: errno)
            }
        }
    }

    public func listDirectory(_ path: String) throws(JournalError) -> [String] {
        guard let dir = opendir(path) else { throw .io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func readFile(_ path: String) throws(JournalError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "read", path: path, errno: errno)
            }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }

    public func openForAppend(_ path: String, create: Bool) throws(JournalError) -> Int32 {
        let flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0)
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        return fd
    }

    public func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws(JournalError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == ENOSPC { throw .diskFull(path: path) }
                throw .io(operation: "write", path: path, errno: errno)
            }
            written += count
        }
    }

    /// fdatasync, not fsync: segments only ever grow by appending, and fdatasync(2) flushes
    /// the data plus the metadata needed to read it back, which includes the file size
    /// (the man page: "a change to the file size ... would require a metadata flush").
    /// What it skips, mtime and atime, recovery never reads. On this machine's ext4 the two
    /// cost the same for a 220-byte append (p50 ≈ 140–165 µs each), so this is about not
    /// asking for more than the contract needs.
    public func sync(_ fd: Int32, path: String) throws(JournalError) {
        try Self.retryingEINTR(operation: "fdatasync", path: path) { fdatasync(fd) }
    }

    /// fsync of the directory itself: a new or removed entry is directory metadata.
    public func syncDirectory(_ path: String) throws(JournalError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { Glibc.close(fd) }
        try Self.retryingEINTR(operation: "fsync", path: path) { fsync(fd) }
    }

    private static func retryingEINTR(
        operation: String, path: String, _ call: () -> Int32
    ) throws(JournalError) {
        while call() != 0 {
            if errno == EINTR { continue }
            if errno == ENOSPC { throw .diskFull(path: path) }
            throw .io(operation: operation, path: path, errno: errno)
        }
    }

    public func truncate(_ path: String, to length: Int) throws(JournalError) {
        guard Glibc.truncate(path, off_t(length)) == 0 else { throw .io(operation: "truncate", path: path, errno: errno) }
    }

    public func remove(_ path: String) throws(JournalError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    public func lockExclusively(_ path: String) throws(JournalError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        // A child process forked by another thread holds a copy of every open
        // file description, this lock included, until it execs. So a lock that
        // is busy may only be passing through a fork: retry briefly before
        // concluding that another process really owns the journal.
        for _ in 0..<Self.lockAttempts {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR else {
                Glibc.close(fd)
                throw .io(operation: "flock", path: path, errno: code)
            }
            usleep(Self.lockRetryMicroseconds)
        }
        Glibc.close(fd)
        throw .locked(directory: path)
    }

    public func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
