#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ParleyCrypto
import ParleyJournal
import ParleyLocks

/// An in-memory disk for the simulator that, when it crashes, loses what was never synced.
///
/// ## The crash model
///
/// Files hold two views of their bytes:
/// - `durable`: what is on stable storage: survives a crash.
/// - `pending`: the writes made after the last `sync` of the file, in order, each at its
///   offset (over bytes already there, or past the end). The journal writes its records
///   and the zeros it allocates ahead, never before its last record.
///
/// A running process reads `durable` with the pending writes applied (`readFile`), as the
/// page cache would show it. `sync(fd)` makes that view durable.
///
/// Directory entries have two views too. Creating a file (`openForAppend` with `create`,
/// `lockExclusively` on a missing path) or removing one changes the *visible* entries at
/// once; the change becomes durable only when its parent directory is synced
/// (`syncDirectory`), which makes that directory's whole visible listing durable.
///
/// `crash(tearing:)` is a power cut:
/// 1. Every directory's listing reverts to its durable one: a file whose creation was not
///    followed by a sync of its directory vanishes (with all its bytes, synced or not); a
///    file whose removal was not followed by one comes back, with its durable bytes.
/// 2. Every surviving file keeps its `durable` bytes plus a prefix of its pending writes'
///    bytes, taken in the order they were written, chosen by the generator: none of them,
///    all of them, all but the last 1–16 bytes, or a cut anywhere (the write at the cut
///    lands in part). A prefix is the only damage: bytes are never reordered, flipped or
///    invented, and nothing already durable is lost. A strictly shorter, non-empty prefix is
///    counted as a torn tail. `crash()` keeps no pending byte at all.
/// 3. The disk's incarnation ends: every file descriptor is invalid, every lock is released,
///    and every `FileSystem` handed out before the crash throws `EIO` from then on (its
///    `close` does nothing), so a crashed node's stale journal cannot write into the next
///    life. Injected failures and a scheduled crash not yet due are dropped.
///
/// Simplifications, all on the side of the journal's actual use:
/// - `truncate` is durable at once, for both views (the journal syncs right after it).
/// - Directories are durable as soon as `createDirectory` returns (the journal never syncs
///   the parent of its own directory; a node's data directory is created once, at setup).
/// - A file is named by its path; locks belong to the path, not to a file's identity.
/// - A failed write (injected) writes nothing; a failed sync leaves the bytes pending: they
///   may still be lost or torn at the next crash.
///
/// Thread-safe (one mutex around everything), so the journal's `.thread` writer works on it
/// too; the simulator uses `JournalWriter.inline`, so that one thread decides every order.
/// Every choice a crash makes comes from the generator it is given, and iteration is over
/// sorted paths, so a run replays exactly from its seed.
public final class SimulatedDisk: @unchecked Sendable {
    /// The operations that can be made to fail (`injectFailure`) and that a scheduled crash
    /// counts (`scheduleCrash`): everything that changes the disk. Reads and `close` are not.
    public enum Operation: String, Sendable, CaseIterable {
        case createDirectory, open, write, sync, syncDirectory, truncate, remove, lock

        /// The system call the real file system would have made, as its errors name it.
        var systemCall: String {
            switch self {
            case .createDirectory: "mkdir"
            case .open: "open"
            case .write: "write"
            case .sync: "fdatasync"
            case .syncDirectory: "fsync"
            case .truncate: "truncate"
            case .remove: "unlink"
            case .lock: "flock"
            }
        }
    }

    /// What the disk has done, over all incarnations.
    public struct Statistics: Sendable, Equatable {
        public var writes = 0
        public var bytesWritten = 0
        /// `sync` calls that made a file's pending bytes durable.
        public var syncs = 0
        public var directorySyncs = 0
        public var crashes = 0
        /// Bytes a crash took away: pending bytes cut from surviving files, and every byte of
        /// the files that vanished because their creation was never made durable.
        public var bytesLost = 0
        /// Files a crash left with a strict, non-empty prefix of their pending bytes.
        public var tornTails = 0
        /// Files created but never made durable by a directory sync, gone after a crash.
        public var filesVanished = 0
        /// Files removed but never made durable by a directory sync, back after a crash.
        public var removalsUndone = 0
        /// Operations failed on purpose by `injectFailure`.
        public var injectedFailures = 0
    }

    private let lock = PThreadLock()
    // Guarded by `lock`:
    private var state = State()

    public init() {}

    /// How many lives the disk has had: 1, plus one per crash.
    public var incarnation: UInt64 { lock.withLock { state.incarnation } }

    public var statistics: Statistics { lock.withLock { state.statistics } }

    /// File descriptors open in the current incarnation (lock files included).
    public var openFileCount: Int { lock.withLock { state.openFiles.count } }

    /// A file system bound to the current incarnation: after the next crash, every call
    /// through it throws `EIO`, and its `close` does nothing.
    public func fileSystem() -> FileSystem {
        FileSystem(disk: self, incarnation: incarnation)
    }

    /// A power cut that keeps no pending byte: only what was synced survives.
    public func crash() {
        lock.withLock { state.crash { _ in 0 } }
    }

    /// A power cut that keeps a random prefix of each file's pending bytes (see the type's
    /// documentation for the choices), drawn from `random`.
    public func crash(tearing random: inout some RandomNumberGenerator) {
        lock.withLock { state.crash { Self.keptPrefix(of: $0, using: &random) } }
    }

    /// Makes the next `operation` through a live file system fail once with `code`, without
    /// doing anything: `ENOSPC` on a write or sync is reported as `.diskFull`, as the POSIX
    /// file system does, anything else as `.io`. Replaces a failure already injected for
    /// `operation`.
    public func injectFailure(_ operation: Operation, errno code: Int32 = EIO) {
        lock.withLock { state.failures[operation] = code }
    }

    /// Crashes the disk, as `crash(tearing:)` with `SeededRandom(seed: tearingSeed)`, during
    /// the next counted `Operation` after `operations` more have completed. The crashing call
    /// throws `EIO`; a write lands first (so the tear may cut through it), anything else never
    /// happens. Replaces an earlier schedule.
    public func scheduleCrash(afterOperations operations: Int, tearingSeed: UInt64) {
        lock.withLock { state.scheduledCrash = (max(operations, 0), SeededRandom(seed: tearingSeed)) }
    }

    /// The names in `directory` as the running process sees them (files and subdirectories).
    public func fileNames(in directory: String) -> [String] {
        lock.withLock { (try? state.listDirectory(directory)) ?? [] }
    }

    /// The names in `directory` that would survive a crash now.
    public func durableFileNames(in directory: String) -> [String] {
        lock.withLock { state.directories[Path.normalized(directory)]?.durableEntries.keys.sorted() ?? [] }
    }

    /// The file's bytes, split into those that survive a crash and those that may not (the
    /// pending writes' bytes, in the order written); nil when no such file is visible.
    public func contents(of path: String) -> (durable: [UInt8], pending: [UInt8])? {
        lock.withLock {
            guard let file = try? state.visibleFile(path, operation: "stat") else { return nil }
            return (file.durable, file.pending.flatMap(\.bytes))
        }
    }

    /// Runs `body` on the state if `incarnation` is still alive, after any scheduled crash
    /// or injected failure for `operation` (nil: a read, which neither counts nor fails).
    fileprivate func perform<T>(
        _ operation: Operation?, path: String, incarnation: UInt64, _ body: (inout State) throws(JournalError) -> T
    ) throws(JournalError) -> T {
        try lock.withLock { () throws(JournalError) -> T in
            let systemCall = operation?.systemCall ?? "read"
            guard state.incarnation == incarnation else { throw .io(operation: systemCall, path: path, errno: EIO) }
            guard let operation else { return try body(&state) }
            if let scheduled = state.scheduledCrash {
                guard scheduled.remaining == 0 else {
                    state.scheduledCrash = (scheduled.remaining - 1, scheduled.random)
                    return try proceed(operation, systemCall: systemCall, path: path, body)
                }
                if operation == .write { _ = try? body(&state) }
                var random = scheduled.random
                state.crash { Self.keptPrefix(of: $0, using: &random) }
                throw .io(operation: systemCall, path: path, errno: EIO)
            }
            return try proceed(operation, systemCall: systemCall, path: path, body)
        }
    }

    /// `body`, unless a failure was injected for `operation`. Under `lock`.
    private func proceed<T>(
        _ operation: Operation, systemCall: String, path: String, _ body: (inout State) throws(JournalError) -> T
    ) throws(JournalError) -> T {
        if let code = state.failures.removeValue(forKey: operation) {
            state.statistics.injectedFailures += 1
            if code == ENOSPC && (operation == .write || operation == .sync || operation == .syncDirectory) {
                throw .diskFull(path: path)
            }
            throw .io(operation: systemCall, path: path, errno: code)
        }
        return try body(&state)
    }

    /// `close` through a handle of `incarnation`: nothing once that incarnation has crashed.
    fileprivate func close(_ fd: Int32, incarnation: UInt64) {
        lock.withLock {
            guard state.incarnation == incarnation else { return }
            state.close(fd)
        }
    }

    /// How many of `count` pending bytes a crash keeps: none, all, all but the last 1–16,
    /// or anywhere in between, each a quarter of the time.
    static func keptPrefix(of count: Int, using random: inout some RandomNumberGenerator) -> Int {
        guard count > 0 else { return 0 }
        switch random.next(upperBound: UInt64(4)) {
        case 0: return 0
        case 1: return count
        case 2: return count - Int.random(in: 1...min(count, 16), using: &random)
        default: return Int.random(in: 0...count, using: &random)
        }
    }
}

// MARK: - The file system handed to a journal

extension SimulatedDisk {
    /// The `JournalFileSystem` of one incarnation of a `SimulatedDisk`. Error cases and
    /// operation names follow `POSIXJournalFileSystem`; a second lock on a path already
    /// locked throws `.io(operation: "flock", path:, errno: EWOULDBLOCK)` at once (the real
    /// one retries for a second, then throws `.locked`).
    public struct FileSystem: JournalFileSystem {
        let disk: SimulatedDisk
        /// The incarnation this handle belongs to; it works only while that one lives.
        public let incarnation: UInt64

        public func createDirectory(_ path: String) throws(JournalError) {
            try disk.perform(.createDirectory, path: path, incarnation: incarnation) { state throws(JournalError) in
                try state.createDirectory(path)
            }
        }

        public func listDirectory(_ path: String) throws(JournalError) -> [String] {
            try disk.perform(nil, path: path, incarnation: incarnation) { state throws(JournalError) in
                try state.listDirectory(path)
            }
        }

        public func readFile(_ path: String) throws(JournalError) -> [UInt8] {
            try disk.perform(nil, path: path, incarnation: incarnation) { state throws(JournalError) in
                let file = try state.visibleFile(path, operation: "open")
                return file.visible
            }
        }

        public func openForWriting(_ path: String, create: Bool) throws(JournalError) -> Int32 {
            try disk.perform(.open, path: path, incarnation: incarnation) { state throws(JournalError) in
                try state.open(path, create: create, lock: false)
            }
        }

        public func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(JournalError) {
            try disk.perform(.write, path: path, incarnation: incarnation) { state throws(JournalError) in
                guard offset >= 0 else { throw .io(operation: "write", path: path, errno: EINVAL) }
                let id = try state.openFile(fd, path: path, operation: "write").file
                state.files[id]?.write(bytes, at: offset)
                state.statistics.writes += 1
                state.statistics.bytesWritten += bytes.count
            }
        }

        public func sync(_ fd: Int32, path: String) throws(JournalError) {
            try disk.perform(.sync, path: path, incarnation: incarnation) { state throws(JournalError) in
                let id = try state.openFile(fd, path: path, operation: "fdatasync").file
                if var file = state.files[id] {
                    file.durable = file.visible
                    file.pending = []
                    state.files[id] = file
                }
                state.statistics.syncs += 1
            }
        }

        public func syncDirectory(_ path: String) throws(JournalError) {
            try disk.perform(.syncDirectory, path: path, incarnation: incarnation) { state throws(JournalError) in
                let key = Path.normalized(path)
                guard var directory = state.directories[key] else { throw .io(operation: "open", path: path, errno: ENOENT) }
                directory.durableEntries = directory.entries
                state.directories[key] = directory
                state.statistics.directorySyncs += 1
                state.forgetUnreachableFiles()
            }
        }

        public func truncate(_ path: String, to length: Int) throws(JournalError) {
            try disk.perform(.truncate, path: path, incarnation: incarnation) { state throws(JournalError) in
                guard length >= 0 else { throw .io(operation: "truncate", path: path, errno: EINVAL) }
                let id = try state.visibleFileID(path, operation: "truncate")
                guard var file = state.files[id] else { return }
                let bytes = file.visible
                file.durable = Array(bytes.prefix(length)) + [UInt8](repeating: 0, count: max(0, length - bytes.count))
                file.visible = file.durable
                file.pending = []
                state.files[id] = file
            }
        }

        public func remove(_ path: String) throws(JournalError) {
            try disk.perform(.remove, path: path, incarnation: incarnation) { state throws(JournalError) in
                let (parent, name) = Path.split(path)
                guard var directory = state.directories[parent] else { return }  // ENOENT is ignored, as by POSIX
                if state.directories[Path.join(parent, name)] != nil {
                    throw .io(operation: "unlink", path: path, errno: EISDIR)
                }
                directory.entries[name] = nil
                state.directories[parent] = directory
            }
        }

        public func lockExclusively(_ path: String) throws(JournalError) -> Int32 {
            try disk.perform(.lock, path: path, incarnation: incarnation) { state throws(JournalError) in
                try state.open(path, create: true, lock: true)
            }
        }

        public func close(_ fd: Int32) {
            disk.close(fd, incarnation: incarnation)
        }
    }
}

// MARK: - State

extension SimulatedDisk {
    /// Paths are compared after normalising: empty and "." components are dropped, so
    /// "/a//b/" and "a/b" name the same file.
    fileprivate enum Path {
        static func normalized(_ path: String) -> String {
            components(path).joined(separator: "/")
        }

        static func components(_ path: String) -> [String] {
            path.split(separator: "/").map(String.init).filter { $0 != "." }
        }

        /// The normalised parent directory and the last component.
        static func split(_ path: String) -> (parent: String, name: String) {
            var parts = components(path)
            let name = parts.popLast() ?? ""
            return (parts.joined(separator: "/"), name)
        }

        static func join(_ parent: String, _ name: String) -> String {
            parent.isEmpty ? name : parent + "/" + name
        }
    }

    /// Everything on the disk, guarded by `SimulatedDisk.lock`.
    fileprivate struct State {
        struct File {
            var durable: [UInt8] = []
            /// Writes since the last sync, oldest first.
            var pending: [(offset: Int, bytes: [UInt8])] = []
            /// `durable` with `pending` applied: what the running process reads.
            var visible: [UInt8] = []

            var pendingBytes: Int { pending.reduce(0) { $0 + $1.bytes.count } }

            mutating func write(_ bytes: [UInt8], at offset: Int) {
                pending.append((offset, bytes))
                Self.apply(bytes, at: offset, to: &visible)
            }

            /// `durable` plus the first `kept` bytes of the pending writes, in write order.
            func durable(keeping kept: Int) -> [UInt8] {
                var result = durable
                var budget = kept
                for write in pending where budget > 0 {
                    let part = Array(write.bytes.prefix(budget))
                    Self.apply(part, at: write.offset, to: &result)
                    budget -= part.count
                }
                return result
            }

            static func apply(_ bytes: [UInt8], at offset: Int, to file: inout [UInt8]) {
                if file.count < offset { file += [UInt8](repeating: 0, count: offset - file.count) }
                let overlap = min(bytes.count, file.count - offset)
                file.replaceSubrange(offset..<offset + overlap, with: bytes.prefix(overlap))
                file += bytes.dropFirst(overlap)
            }
        }

        struct Directory {
            /// Name to file id, as the running process sees it.
            var entries: [String: Int] = [:]
            /// Name to file id, as of the last sync of this directory: what a crash leaves.
            var durableEntries: [String: Int] = [:]
        }

        struct OpenFile {
            let file: Int
            /// The normalised path whose lock this descriptor holds, if any.
            let lockedPath: String?
        }

        /// Keyed by normalised path; "" is the root, which always exists.
        var directories: [String: Directory] = ["": Directory()]
        /// A file's bytes, by id. Directory entries name ids, so a file removed but not yet
        /// durably removed keeps its bytes (a crash brings it back).
        var files: [Int: File] = [:]
        var nextFileID = 1
        var openFiles: [Int32: OpenFile] = [:]
        /// Never reused, so a descriptor closed earlier in this incarnation is simply invalid.
        var nextDescriptor: Int32 = 3
        /// Locked normalised path to the descriptor holding the lock.
        var lockHolders: [String: Int32] = [:]
        var incarnation: UInt64 = 1
        var failures: [SimulatedDisk.Operation: Int32] = [:]
        /// Counted operations still to complete before the crash, and the crash's generator.
        var scheduledCrash: (remaining: Int, random: SeededRandom)?
        var statistics = SimulatedDisk.Statistics()

        mutating func createDirectory(_ path: String) throws(JournalError) {
            var prefix = ""
            for component in Path.components(path) {
                let parent = prefix
                prefix = Path.join(prefix, component)
                if directories[prefix] != nil { continue }
                if directories[parent]?.entries[component] != nil {
                    throw .io(operation: "mkdir", path: prefix, errno: ENOTDIR)
                }
                directories[prefix] = Directory()
            }
        }

        func listDirectory(_ path: String) throws(JournalError) -> [String] {
            let key = Path.normalized(path)
            guard let directory = directories[key] else { throw .io(operation: "opendir", path: path, errno: ENOENT) }
            let subdirectories = directories.keys.filter { $0 != key && Path.split($0).parent == key }.map { Path.split($0).name }
            return (Array(directory.entries.keys) + subdirectories).sorted()
        }

        func visibleFileID(_ path: String, operation: String) throws(JournalError) -> Int {
            let (parent, name) = Path.split(path)
            guard let id = directories[parent]?.entries[name] else {
                let code = directories[Path.normalized(path)] != nil ? EISDIR : ENOENT
                throw .io(operation: operation, path: path, errno: code)
            }
            return id
        }

        func visibleFile(_ path: String, operation: String) throws(JournalError) -> File {
            files[try visibleFileID(path, operation: operation)] ?? File()
        }

        func openFile(_ fd: Int32, path: String, operation: String) throws(JournalError) -> OpenFile {
            guard let open = openFiles[fd] else { throw .io(operation: operation, path: path, errno: EBADF) }
            return open
        }

        /// `open(2)`: with `create`, `O_CREAT | O_EXCL` (appending) or, with `lock`, `O_CREAT`
        /// followed by a non-blocking exclusive `flock`.
        mutating func open(_ path: String, create: Bool, lock: Bool) throws(JournalError) -> Int32 {
            let systemCall = lock ? "flock" : "open"
            let (parent, name) = Path.split(path)
            guard var directory = directories[parent], !name.isEmpty else {
                throw .io(operation: "open", path: path, errno: ENOENT)
            }
            if directories[Path.join(parent, name)] != nil { throw .io(operation: "open", path: path, errno: EISDIR) }
            let lockedPath = lock ? Path.join(parent, name) : nil
            if let lockedPath, lockHolders[lockedPath] != nil {
                throw .io(operation: systemCall, path: path, errno: EWOULDBLOCK)
            }
            let id: Int
            if let existing = directory.entries[name] {
                if create && !lock { throw .io(operation: "open", path: path, errno: EEXIST) }
                id = existing
            } else {
                guard create else { throw .io(operation: "open", path: path, errno: ENOENT) }
                id = nextFileID
                nextFileID += 1
                files[id] = File()
                directory.entries[name] = id
                directories[parent] = directory
            }
            let fd = nextDescriptor
            nextDescriptor += 1
            openFiles[fd] = OpenFile(file: id, lockedPath: lockedPath)
            if let lockedPath { lockHolders[lockedPath] = fd }
            return fd
        }

        mutating func close(_ fd: Int32) {
            guard let open = openFiles.removeValue(forKey: fd) else { return }
            if let path = open.lockedPath, lockHolders[path] == fd { lockHolders[path] = nil }
            forgetUnreachableFiles()
        }

        /// The power cut described on `SimulatedDisk`; `keep(n)` says how many of a surviving
        /// file's `n` pending bytes reach the disk. Files are visited in path order, so the
        /// generator behind `keep` is consumed in the same order on every run.
        mutating func crash(keeping keep: (Int) -> Int) {
            statistics.crashes += 1
            var survivors: [Int] = []
            for key in directories.keys.sorted() {
                guard var directory = directories[key] else { continue }
                for (name, id) in directory.entries where directory.durableEntries[name] != id {
                    statistics.filesVanished += 1
                    if let file = files[id] { statistics.bytesLost += file.durable.count + file.pendingBytes }
                }
                for (name, id) in directory.durableEntries where directory.entries[name] != id {
                    statistics.removalsUndone += 1
                }
                directory.entries = directory.durableEntries
                directories[key] = directory
                survivors += directory.durableEntries.sorted { $0.key < $1.key }.map(\.value)
            }
            var survived: [Int: File] = [:]
            for id in survivors {
                guard var file = files[id] else { continue }
                let pending = file.pendingBytes
                let kept = min(max(keep(pending), 0), pending)
                if kept > 0 && kept < pending { statistics.tornTails += 1 }
                statistics.bytesLost += pending - kept
                file.durable = file.durable(keeping: kept)
                file.visible = file.durable
                file.pending = []
                survived[id] = file
            }
            files = survived
            openFiles = [:]
            lockHolders = [:]
            failures = [:]
            scheduledCrash = nil
            incarnation += 1
        }

        /// Drops the bytes of files no directory names (visibly or durably) and no descriptor holds.
        mutating func forgetUnreachableFiles() {
            var reachable = Set(openFiles.values.map(\.file))
            for directory in directories.values {
                reachable.formUnion(directory.entries.values)
                reachable.formUnion(directory.durableEntries.values)
            }
            files = files.filter { reachable.contains($0.key) }
        }
    }
}
