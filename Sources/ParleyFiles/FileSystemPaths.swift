#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// Operations on paths rather than open files: directories, whole-file reads, rename,
/// remove. Plain libc where swift-system has no call (mkdir, opendir, truncate, rename).
public enum FileSystemPaths {
    /// Creates `path` with `mode`; an existing directory is fine. With `intermediates`,
    /// missing parents are created too (each with `mode`), as `mkdir -p` does.
    public static func createDirectory(
        _ path: String, mode: FilePermissions = [.ownerReadWriteExecute], intermediates: Bool = true
    ) throws(FileError) {
        var prefixes: [String] = []
        if intermediates {
            var components: [Substring] = []
            for part in path.split(separator: "/", omittingEmptySubsequences: false) {
                components.append(part)
                let prefix = components.joined(separator: "/")
                if !prefix.isEmpty { prefixes.append(prefix) }
            }
        } else {
            prefixes = [path]
        }
        for prefix in prefixes where mkdir(prefix, mode.rawValue) != 0 && errno != EEXIST {
            throw .last("mkdir", prefix)
        }
    }

    /// The names in directory `path`, without "." and "..", in no particular order.
    public static func listDirectory(_ path: String) throws(FileError) -> [String] {
        guard let directory = opendir(path) else { throw .last("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole file at `path`, or its first `limit` bytes.
    public static func readFile(_ path: String, limit: Int = .max) throws(FileError) -> [UInt8] {
        let file = try DurableFile.open(path, .readOnly)
        defer { file.close() }
        return try file.readToEnd(limit: limit)
    }

    /// fsync of the directory itself: a created, renamed or removed entry is directory
    /// metadata, not durable until this returns. With `acceptingUnsupported`, a file system
    /// that cannot fsync a directory (EINVAL) is accepted: there is nothing more to do on it.
    public static func syncDirectory(_ path: String, acceptingUnsupported: Bool = false) throws(FileError) {
        let directory = try DurableFile.open(path, .readOnly, options: .directory)
        defer { directory.close() }
        do {
            try directory.sync()
        } catch where acceptingUnsupported && error.errno == EINVAL {
            return
        }
    }

    /// Cuts the file at `path` to `length` bytes.
    public static func truncate(_ path: String, to length: Int) throws(FileError) {
        try DurableFile.retryingEINTR("truncate", path) { Glibc.truncate(path, off_t(length)) }
    }

    /// Removes the file at `path`; one that is already gone is fine.
    public static func remove(_ path: String) throws(FileError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .last("unlink", path) }
    }

    /// Renames `source` over `destination` in one step (rename(2)); errors name `destination`.
    public static func rename(_ source: String, to destination: String) throws(FileError) {
        guard Glibc.rename(source, destination) == 0 else { throw .last("rename", destination) }
    }

    /// The directory holding `path`: "." for a bare name, "/" for a file at the root.
    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = path[..<slash]
        return directory.isEmpty ? "/" : String(directory)
    }
}
