#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// Whole files written durably: a new file, or one replaced so that a crash leaves either
/// the old contents or the new, never a mix or nothing.
public enum AtomicFileWrite {
    /// Creates `path`, which must not exist (EEXIST otherwise), with exactly `mode` (set
    /// again after `open`, so the umask cannot change it), writes `contents` and fsyncs it.
    /// On failure the new file is removed. The directory entry is not synced: see
    /// ``replace(_:with:mode:)`` or ``FileSystemPaths/syncDirectory(_:acceptingUnsupported:)``.
    public static func create(
        _ path: String, with contents: some Sequence<UInt8>, mode: FilePermissions = DurableFile.privateMode
    ) throws(FileError) {
        let file = try DurableFile.open(path, .writeOnly, options: [.create, .exclusiveCreate], mode: mode)
        do {
            try file.setMode(mode)
            try file.writeAll(contents)
            try file.sync()
            file.close()
        } catch {
            file.close()
            try? FileSystemPaths.remove(path)
            throw error
        }
    }

    /// Replaces `path` (existing or not) with `contents`: a temporary file in the same
    /// directory is created, written and fsync'd (``create(_:with:mode:)``), renamed over
    /// `path`, and the directory fsync'd.
    ///
    /// Until the rename, `path` is untouched and a failure removes the temporary file, so
    /// an error before the rename leaves the old contents. Errors name the temporary file
    /// up to its fsync, then `path` (rename), then the directory (its fsync; a file system
    /// that cannot fsync a directory is accepted).
    public static func replace(
        _ path: String, with contents: some Sequence<UInt8>, mode: FilePermissions = DurableFile.privateMode
    ) throws(FileError) {
        let temporary = temporaryPath(besides: path)
        try create(temporary, with: contents, mode: mode)
        do {
            try FileSystemPaths.rename(temporary, to: path)
        } catch {
            try? FileSystemPaths.remove(temporary)
            throw error
        }
        try FileSystemPaths.syncDirectory(FileSystemPaths.parentDirectory(of: path), acceptingUnsupported: true)
    }

    /// `.<name>.tmp-<16 hex digits>` next to `path`: the same directory, so the rename
    /// stays on one file system; random, so two writers never share one.
    static func temporaryPath(besides path: String) -> String {
        let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        var unique = String(UInt64.random(in: .min ... .max), radix: 16)
        unique = String(repeating: "0", count: 16 - unique.count) + unique
        return FileSystemPaths.parentDirectory(of: path) + "/." + name + ".tmp-" + unique
    }
}
