#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// A failed file operation: which one, on which path, and its `errno`.
///
/// The one error of this layer. Each caller maps it to its own typed error (the journal's
/// `JournalError`, a key file's `KeyFileError`, ...), so what users read stays theirs.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The system call, as callers already named it in their errors: "open", "write",
    /// "fsync", "fdatasync", "rename", "mkdir", "flock", ...
    public let operation: String
    /// What it was called on; for a rename, the destination.
    public let path: String
    /// The error number (ENOENT, ENOSPC, ...); ``reason`` is its text.
    public let errno: Int32

    init(_ operation: String, _ path: String, _ error: Errno) {
        self.init(operation: operation, path: path, errno: error.rawValue)
    }

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// `errno` from the call that just failed.
    static func last(_ operation: String, _ path: String) -> FileError {
        FileError(operation: operation, path: path, errno: currentErrno())
    }

    /// The system's text for `errno`, e.g. "No space left on device".
    public var reason: String { Self.message(for: errno) }

    public var description: String { "\(operation) failed for \(path): \(reason) (errno \(errno))" }

    /// The system's text for an error number.
    public static func message(for code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// `errno`, read through a function: the property is shadowed inside `FileError`.
private func currentErrno() -> Int32 { errno }
