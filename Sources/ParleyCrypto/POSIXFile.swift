#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, and its `errno`.
struct SystemCallError: Error {
    let operation: String
    let code: Int32
}

/// Thin wrappers over the POSIX file calls key files need: retry on EINTR, report errno.
enum POSIXFile {
    static let privateMode: mode_t = 0o600
    static let permissionBits: mode_t = 0o7777
    static let groupAndOtherBits: mode_t = 0o077
    private static let fileTypeBits: mode_t = 0o170000
    private static let regularFileType: mode_t = 0o100000

    static func openFile(_ path: String, flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> Int32 {
        while true {
            let fd = path.withCString { open($0, flags | O_CLOEXEC, mode) }
            if fd >= 0 { return fd }
            if errno != EINTR { throw SystemCallError(operation: "open", code: errno) }
        }
    }

    static func closeFile(_ fd: Int32) {
        // Linux releases the descriptor even when close reports EINTR; retrying could close another file.
        _ = close(fd)
    }

    static func status(_ fd: Int32) throws(SystemCallError) -> stat {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SystemCallError(operation: "fstat", code: errno) }
        return info
    }

    static func isRegularFile(_ info: stat) -> Bool {
        (info.st_mode & fileTypeBits) == regularFileType
    }

    static func setMode(_ fd: Int32, _ mode: mode_t) throws(SystemCallError) {
        guard fchmod(fd, mode) == 0 else { throw SystemCallError(operation: "fchmod", code: errno) }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let written = write(fd, base + offset, bytes.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                throw SystemCallError(operation: "write", code: written < 0 ? errno : EIO)
            }
        }
    }

    /// Reads until end of file or until `buffer` is full; returns the number of bytes read.
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var total = 0
        while total < buffer.count {
            let got = read(fd, base + total, buffer.count - total)
            if got > 0 {
                total += got
            } else if got == 0 {
                break
            } else if errno != EINTR {
                throw SystemCallError(operation: "read", code: errno)
            }
        }
        return total
    }

    static func syncFile(_ fd: Int32) throws(SystemCallError) {
        while fsync(fd) != 0 {
            if errno != EINTR { throw SystemCallError(operation: "fsync", code: errno) }
        }
    }

    /// Makes a directory entry change (create, rename) durable. File systems that cannot
    /// fsync a directory (EINVAL) are accepted: there is nothing more to do on them.
    static func syncDirectory(_ path: String) throws(SystemCallError) {
        let fd = try openFile(path, flags: O_RDONLY | O_DIRECTORY)
        defer { closeFile(fd) }
        do {
            try syncFile(fd)
        } catch where error.code == EINVAL {
            return
        }
    }

    static func renameFile(_ from: String, to: String) throws(SystemCallError) {
        let result = from.withCString { source in to.withCString { rename(source, $0) } }
        guard result == 0 else { throw SystemCallError(operation: "rename", code: errno) }
    }

    static func unlinkFile(_ path: String) {
        _ = path.withCString { unlink($0) }
    }

    static func message(for code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
