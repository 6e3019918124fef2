#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// An open file and the path it was opened by, so every failure names the file.
///
/// Built on swift-system's `FileDescriptor` (open, write, read, seek, resize, close, all
/// retried on EINTR); fsync, fdatasync, fchmod and flock are plain libc calls because
/// swift-system has none. A value, not an owner: the caller closes it, once, which lets
/// layers that keep raw descriptors (the journal's `JournalFileSystem`) use it too.
public struct DurableFile: Sendable {
    /// Mode of every file this library creates unless told otherwise: its owner's only.
    public static let privateMode: FilePermissions = [.ownerReadWrite]

    public let descriptor: FileDescriptor
    public let path: String

    public init(_ descriptor: FileDescriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// The raw descriptor, for layers that keep `Int32`s.
    public var rawValue: Int32 { descriptor.rawValue }

    /// Opens `path`, always close-on-exec: a child process must not inherit a journal,
    /// ledger or key file (nor keep a lock alive). `mode` is used when a file is created.
    public static func open(
        _ path: String, _ access: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
        mode: FilePermissions = privateMode
    ) throws(FileError) -> DurableFile {
        let descriptor = try systemCall("open", path) {
            try FileDescriptor.open(FilePath(path), access, options: options.union(.closeOnExec), permissions: mode)
        }
        return DurableFile(descriptor, path: path)
    }

    /// Writes every byte or throws; a short write is continued, EINTR retried, and a write
    /// that makes no progress is EIO (swift-system's `writeAll` would retry it forever).
    public func writeAll(_ bytes: some Sequence<UInt8>) throws(FileError) {
        try write(bytes, at: nil)
    }

    /// Writes every byte at `offset`, leaving the file offset where it was.
    public func writeAll(_ bytes: some Sequence<UInt8>, atOffset offset: Int) throws(FileError) {
        try write(bytes, at: offset)
    }

    private func write(_ bytes: some Sequence<UInt8>, at offset: Int?) throws(FileError) {
        let buffer = Array(bytes)
        let failure: FileError? = buffer.withUnsafeBytes { raw -> FileError? in
            var done = 0
            while done < raw.count {
                let rest = UnsafeRawBufferPointer(rebasing: raw[done...])
                let written: Int
                do throws(FileError) {
                    written = try Self.systemCall("write", path) {
                        if let offset {
                            try descriptor.write(toAbsoluteOffset: Int64(offset + done), rest, retryOnInterrupt: true)
                        } else {
                            try descriptor.write(rest, retryOnInterrupt: true)
                        }
                    }
                } catch {
                    return error
                }
                guard written > 0 else { return FileError(operation: "write", path: path, errno: EIO) }
                done += written
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Reads until end of file or until `buffer` is full; returns the number of bytes read.
    /// Reads into the caller's buffer so secret contents need never be copied.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws(FileError) -> Int {
        var total = 0
        while total < buffer.count {
            let got = try Self.systemCall("read", path) {
                try descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
            }
            if got == 0 { break }
            total += got
        }
        return total
    }

    /// The file's bytes from `offset` to its end (at most `limit` of them), read with
    /// pread: the file offset does not move.
    public func readToEnd(fromOffset offset: Int = 0, limit: Int = .max) throws(FileError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let position = Int64(offset + bytes.count)
            let count = try Self.systemCall("read", path) {
                try chunk.withUnsafeMutableBytes { try descriptor.read(fromAbsoluteOffset: position, into: $0) }
            }
            if count == 0 { break }
            bytes += chunk[0..<min(count, limit - bytes.count)]
        }
        return bytes
    }

    /// fsync: the data and all metadata are on stable storage when it returns.
    public func sync() throws(FileError) {
        try Self.retryingEINTR("fsync", path) { fsync(rawValue) }
    }

    /// fdatasync: the data, and the metadata needed to read it back (its size), are on
    /// stable storage; timestamps may not be. Enough for a file that only grows.
    public func syncData() throws(FileError) {
        try Self.retryingEINTR("fdatasync", path) { fdatasync(rawValue) }
    }

    /// Sets the permission bits exactly: `open`'s mode is narrowed by the umask, this is not.
    public func setMode(_ mode: FilePermissions) throws(FileError) {
        try Self.retryingEINTR("fchmod", path) { fchmod(rawValue, mode.rawValue) }
    }

    /// fstat of the open file (what was opened, not what the path names now).
    public func status() throws(FileError) -> Stat {
        try Self.systemCall("fstat", path) { try descriptor.stat() }
    }

    /// Cuts the file to `length` bytes (ftruncate); the file offset does not move.
    public func truncate(to length: Int) throws(FileError) {
        try Self.systemCall("truncate", path) { try descriptor.resize(to: Int64(length)) }
    }

    /// Moves the file offset to `offset` from the start.
    public func seek(to offset: Int) throws(FileError) {
        _ = try Self.systemCall("seek", path) { try descriptor.seek(offset: Int64(offset), from: .start) }
    }

    /// Closes the descriptor. Errors are dropped: Linux releases the descriptor even when
    /// close reports one, and retrying could close a file another thread just opened.
    public func close() {
        _ = try? descriptor.close()
    }

    /// Runs a swift-system call, naming its failure `operation` on `path`.
    static func systemCall<T>(_ operation: String, _ path: String, _ call: () throws -> T) throws(FileError) -> T {
        do {
            return try call()
        } catch {
            throw FileError(operation, path, error as? Errno ?? .ioError)
        }
    }

    static func retryingEINTR(_ operation: String, _ path: String, _ call: () -> Int32) throws(FileError) {
        while call() != 0 {
            let error = FileError.last(operation, path)
            if error.errno != EINTR { throw error }
        }
    }
}
