#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// An exclusive advisory lock (flock) on a file, held while the file stays open: it says
/// "this directory is in use" to other processes, and dies with the process that held it.
public struct LockFile: Sendable {
    /// How long a busy lock is retried by default: 100 × 10 ms.
    public static let defaultAttempts = 100
    public static let defaultRetryInterval: Duration = .milliseconds(10)

    /// The open lock file; closing it releases the lock.
    public let file: DurableFile

    /// Opens (creating, mode 0600) `path` and takes the lock, trying `attempts` times
    /// `retryInterval` apart.
    ///
    /// Retrying exists because a child process forked by another thread holds a copy of
    /// every open file description, this lock included, until it execs: a busy lock may
    /// only be passing through a fork. A lock still busy after the last attempt throws
    /// `FileError(operation: "flock", path:, errno: EWOULDBLOCK)`; any other failure its own errno.
    public static func acquire(
        _ path: String, attempts: Int = defaultAttempts, retryInterval: Duration = defaultRetryInterval
    ) throws(FileError) -> LockFile {
        let file = try DurableFile.open(path, .readWrite, options: .create)
        var code = EWOULDBLOCK
        for attempt in 0..<max(1, attempts) {
            if attempt > 0 { usleep(UInt32(retryInterval / .microseconds(1))) }
            if flock(file.rawValue, LOCK_EX | LOCK_NB) == 0 { return LockFile(file: file) }
            code = errno
            guard code == EWOULDBLOCK || code == EINTR else { break }
        }
        file.close()
        throw FileError(operation: "flock", path: path, errno: code == EINTR ? EWOULDBLOCK : code)
    }

    /// Whether an error from ``acquire(_:attempts:retryInterval:)`` means another holder.
    public static func isBusy(_ error: FileError) -> Bool {
        error.operation == "flock" && error.errno == EWOULDBLOCK
    }

    /// Closes the file, releasing the lock.
    public func release() {
        file.close()
    }
}
