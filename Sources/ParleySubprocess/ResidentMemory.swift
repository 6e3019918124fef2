import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of a process, from procfs: how `parley bench` and `game-server --load`
/// measure memory per channel.
public enum ResidentMemory {
    /// RSS in bytes of `pid` (default: this process): `/proc/PID/statm` field 2 times the
    /// page size; nil where there is no procfs.
    public static func bytes(pid: Int32? = nil) -> Int? {
        let path = pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// This process's RSS after glibc's `malloc_trim(0)` hands free heap pages back to the
    /// kernel: closer to the live heap than `bytes()`, which also counts memory malloc keeps.
    public static func trimmedBytes() -> Int? {
        if let trim = mallocTrim { _ = trim(0) }
        return bytes()
    }

    /// Looked up at run time: the Glibc module does not import `malloc.h`.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
}
