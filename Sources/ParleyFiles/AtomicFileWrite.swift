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
        do {
            try create(temporary, with: contents, mode: mode)
        } catch where error.errno == EEXIST {
            // A crash between create and rename left it behind: it never held the file's
            // contents (the rename did not happen), so it goes, and one leftover at most.
            try FileSystemPaths.remove(temporary)
            try create(temporary, with: contents, mode: mode)
        }
        do {
            try FileSystemPaths.rename(temporary, to: path)
        } catch {
            try? FileSystemPaths.remove(temporary)
            throw error
        }
        try FileSystemPaths.syncDirectory(FileSystemPaths.parentDirectory(of: path), acceptingUnsupported: true)
    }

    /// `.<name>.tmp` next to `path`: the same directory, so the rename stays on one file
    /// system; one fixed name, so a crash leaves at most one behind (the next replace
    /// removes it). Writers of one path must take turns, as every caller here does (the
    /// node actor writes the peers file; the journal lock guards its directory).
    static func temporaryPath(besides path: String) -> String {
        let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        return FileSystemPaths.parentDirectory(of: path) + "/." + name + ".tmp"
    }
}
