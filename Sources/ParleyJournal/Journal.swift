import Foundation
import ParleyChannel
import ParleyFiles
import ParleyLocks
import ParleyWire

/// Whether `append` waits for the disk.
public enum Durability: String, Sendable, CaseIterable {
    /// `append` returns after fsync: the record survives a crash or power loss. The default.
    case fsync
    /// `append` returns after write(2): survives a process crash, not power loss. Tests and throwaway demos only.
    case none
}

/// Who writes and syncs the journal's records.
public enum JournalWriter: String, Sendable, CaseIterable {
    /// The journal's own thread, with group commit: appends from many callers share a sync,
    /// and the caller's event loop never blocks on the disk. The default.
    case thread
    /// The caller, synchronously, one batch at a time: for the simulator. No thread, so the
    /// caller's scheduling decides the order in which records reach the disk, and a run
    /// replays exactly from its seed. No group commit: every append writes (and, with
    /// `.fsync`, syncs) its own batch before it returns, and `append` blocks its caller for
    /// that long (harmless on the simulator's in-memory disk, wrong on a real one).
    case inline
}

/// What opening a journal found on disk.
public struct RecoveryReport: Sendable {
    public var channels: [ChannelID: ChannelRecord]
    /// Records read back to rebuild `channels` (bounded by compaction, not by history).
    public var recordsReplayed: Int
    public var segments: Int
    /// A write cut short by a crash was found at the end and removed.
    public var truncatedTail: Bool
    public var truncatedBytes: Int
}

/// The node's append-only dispute journal: a directory of segment files shared by all channels.
///
/// Durability contract:
/// - `append` returns only when its records are durable: written and, with
///   `.fsync`, fsync'd; a new segment file is followed by an fsync of the
///   directory before any record in it counts as durable.
/// - Appends from many callers that arrive while a sync is running share the
///   next one (group commit). When the last commit was shared, the next one
///   waits up to `groupCommitWindow` for as many appenders to gather; a lone
///   appender never waits.
/// - With inline commits on (`enableInlineCommits(when:)`; off by default), a lone
///   appender commits on its own thread: when the owner's gate allows it, nothing
///   is being written or queued and the last commits each carried one batch,
///   `append` writes and syncs its batch itself instead of handing it to the
///   writer thread and waiting to be woken (two thread hand-offs, about as much as
///   the sync on a virtual machine). Everything else — group commits, the zeros
///   written ahead, compaction — runs on the journal's own thread, never on a
///   caller's event loop; callers on an event loop thread use the async `append`,
///   whose task runs on the cooperative pool.
/// - With `writer: .inline` (for the simulator: no thread, so the caller's
///   scheduling decides the order) each append is written, synced and applied
///   on the caller, one batch at a time, before it returns. Everything else in
///   this contract holds unchanged; only group commit is gone.
/// - If a write or sync fails (ENOSPC, EIO), the records of that batch are
///   reported as failed, and every later `append` fails with `.stopped`: the
///   journal never reports success for a record that is not durable.
/// - A crash at any point leaves a prefix of the appended records plus at
///   most one torn record at the end, which the next `open` removes.
///
/// Compaction: when the current segment passes `maxSegmentBytes`, a new one
/// starts with one snapshot record per channel, and older segments are
/// deleted once that snapshot is durable, so recovery reads live data, not
/// all history.
public final class Journal: @unchecked Sendable {
    public let directory: String
    public let durability: Durability
    public let maxSegmentBytes: Int
    /// When the previous commit carried two or more batches (other appenders are active),
    /// the writer waits for as many batches as that commit carried (at most 64), but at
    /// most this long after the first one is queued, before it writes and syncs. A lone
    /// appender, whose commits carry one batch, never waits; after a shared commit the
    /// next one waits at most once more before it is alone again. Zero turns gathering off.
    public let groupCommitWindow: Duration
    /// Who writes: the journal's thread or, in the simulator, each appender inline.
    public let writer: JournalWriter
    /// How far ahead of its last record the writer fills the segment with zeros (with
    /// `.fsync`; 0 turns it off). Records then overwrite allocated space, and the sync that
    /// makes one durable flushes data only, not the file's size: about half the cost of a
    /// sync after an append here (Docs/Journal.md, "Preallocation").
    public let preallocationBytes: Int
    /// With `.thread`: whether a lone appender commits its batch on its own thread when the
    /// journal is idle (see `commitsHere`). Off unless asked for (`Journal(commitsInlineWhenIdle:)`,
    /// `enableInlineCommits(when:)`), and always off on a one-core machine, where the blocked
    /// appender's thread would be the cooperative pool's only one: no other appender could
    /// run and queue meanwhile, so every append would sync alone, in turn.
    public var commitsInlineWhenIdle: Bool { lock.withLock { inlineCommitsOn } }
    /// Under `lock`.
    private var inlineCommitsOn: Bool
    /// What `open` recovered. Channels as they were before this process appended anything.
    public let recovery: RecoveryReport

    private let fileSystem: any JournalFileSystem
    private let lock = ConditionLock()
    // Guarded by `lock`:
    private var queue: [PendingBatch] = []
    private var failure: JournalError?
    private var closing = false
    /// The writer thread runs: from `init` until it has drained the queue after `close()`.
    private var writerActive = false
    /// Someone holds the commit role (owns `fd`, `segmentBytes`, `allocatedBytes`): the
    /// writer thread while it commits or tends the segment, or an appender committing its
    /// own batch (a lone appender, or any appender with `.inline`). `close()` waits for it
    /// to be released before closing the files.
    private var committing = false
    /// A lone appender's commit left the segment needing zeros ahead or compaction: the
    /// writer thread does it before its next commit, and appenders queue until it has.
    private var upkeepDue = false
    /// The writer is blocked in `nextBatches` until the queue holds this many batches
    /// (0: not waiting). `enqueue` signals only when that is reached, so appenders that
    /// arrive while the writer gathers do not wake it one by one.
    private var writerWaitsFor = 0
    /// Ids named by `opened` records queued but not yet written (then they are in `table`):
    /// with `table`, what `enqueue` checks to refuse a second `opened` for one id.
    private var queuedOpenIDs: Set<ChannelID> = []
    // Owned by whoever holds the commit role (`committing`) after `open`:
    private var fd: Int32
    private var segmentIndex: UInt64
    /// The path of segment `segmentIndex`, built once per segment rather than on every write.
    private var currentSegmentPath = ""
    private var segmentBytes: Int
    /// The size of the current segment file: `segmentBytes` plus the zeros written ahead.
    private var allocatedBytes: Int
    private var table: ChannelTable
    private let lockFD: Int32
    private var stats = Stats()
    private let metrics = JournalMetrics()
    /// Batches the previous commit carried: how many appenders are active. Under `lock`.
    private var previousCommitBatches = 0
    /// Commits in a row that carried one batch while no other appender queued: a lone
    /// appender commits on its own thread only once this reaches `soloCommitsBeforeInline`,
    /// so that under load, even light load, batches go to the writer thread and share
    /// syncs. Under `lock`.
    private var soloCommitStreak = Journal.soloCommitsBeforeInline
    /// Asked (under `lock`) before a lone appender commits on its own thread
    /// (`enableInlineCommits(when:)`).
    private var inlineCommitGate: (@Sendable () -> Bool)?
    /// The array of the last commit's batches, emptied, kept so the queue reuses its storage.
    private var recycledQueue: [PendingBatch] = []

    /// Syncs performed and records written, for tests and benchmarks.
    public struct Stats: Sendable {
        public var syncs = 0
        public var batches = 0
        public var records = 0
        public var compactions = 0
        /// Commits that waited (up to `groupCommitWindow`) for more appenders first.
        public var gatheringWaits = 0
        /// Zero-fills ahead of the records (`preallocationBytes`), each with its own sync
        /// (not counted in `syncs`), and the bytes they allocated.
        public var preallocations = 0
        public var preallocatedBytes = 0
        /// Commits a lone appender made on its own thread (with `.thread`; counted in
        /// `batches`), without a hand-off to the writer thread and back.
        public var inlineCommits = 0
    }

    public static let defaultMaxSegmentBytes = 16 << 20

    /// How long a group commit may wait for more appenders (Docs/Journal.md,
    /// "Gathering"): about four syncs of a small append (p50 ≈ 150 µs) on the machine it
    /// was tuned on. With 1,000 channels in `parley bench` it cut syncs per update from
    /// ≈ 0.47 (no gathering) to ≈ 0.25 at 300 µs, ≈ 0.20 at 600 µs and ≈ 0.17 at 1 ms;
    /// past 600 µs the gain no longer pays for the longer worst-case wait.
    public static let defaultGroupCommitWindow: Duration = .microseconds(600)
    /// 1 MiB: about 4,000 records of a payment channel per zero-fill, whose write and sync
    /// (≈ 0.9 ms here) run after a commit's waiters were answered. Smaller fills cost more
    /// per byte (64 KiB: ≈ 0.24 ms each), larger ones hold up the commit after them longer.
    public static let defaultPreallocationBytes = 1 << 20
    /// Two cores or more (see `commitsInlineWhenIdle`): with one, a thread blocked in a sync
    /// is the cooperative pool's only one.
    public static let machineAllowsInlineCommits = ProcessInfo.processInfo.activeProcessorCount > 1
    /// A gathering commit stops waiting once this many batches are queued.
    static let gatherBatchLimit = 64
    /// Commits in a row by one appender at a time before a lone appender commits on its own
    /// thread (see `commitsHere`).
    static let soloCommitsBeforeInline = 4

    /// Opens (creating if needed) the journal in `directory` and recovers every channel.
    ///
    /// A torn record at the end of the last segment is truncated away and
    /// reported in `recovery.truncatedTail`; damage anywhere else throws
    /// `.corrupted` and nothing is modified.
    public init(
        directory: String, durability: Durability = .fsync, maxSegmentBytes: Int = Journal.defaultMaxSegmentBytes,
        groupCommitWindow: Duration = Journal.defaultGroupCommitWindow,
        preallocationBytes: Int = Journal.defaultPreallocationBytes,
        fileSystem: any JournalFileSystem = POSIXJournalFileSystem(), writer: JournalWriter = .thread,
        commitsInlineWhenIdle: Bool = false
    ) throws(JournalError) {
        self.directory = directory
        self.durability = durability
        self.maxSegmentBytes = maxSegmentBytes
        // Without syncs there is no size flush to save.
        self.preallocationBytes = durability == .fsync ? max(preallocationBytes, 0) : 0
        self.groupCommitWindow = max(groupCommitWindow, .zero)
        self.fileSystem = fileSystem
        self.writer = writer
        inlineCommitsOn = commitsInlineWhenIdle && Journal.machineAllowsInlineCommits
        try fileSystem.createDirectory(directory)
        lockFD = try fileSystem.lockExclusively(directory + "/LOCK")
        var found: JournalContents
        do { found = try JournalContents.read(directory: directory, fileSystem: fileSystem) } catch {
            fileSystem.close(lockFD)
            throw error
        }
        do {
            (fd, segmentIndex, segmentBytes, allocatedBytes) = try Self.prepareTail(
                found, directory: directory, fileSystem: fileSystem)
        } catch {
            fileSystem.close(lockFD)
            throw error
        }
        table = found.table
        currentSegmentPath = directory + "/" + SegmentFormat.fileName(index: segmentIndex)
        recovery = RecoveryReport(
            channels: found.table.channels, recordsReplayed: found.recordsRead, segments: max(found.segments.count, 1),
            truncatedTail: found.tornBytes > 0, truncatedBytes: found.tornBytes)
        guard writer == .thread else { return }
        // The writer thread keeps the journal alive until `close()`.
        writerActive = true
        let thread = Thread { self.writerLoop() }
        thread.name = "parley-journal"
        thread.start()
    }

    /// Appends `entries` in order and returns once they are durable.
    ///
    /// With `writer: .inline`, the write and sync run on the calling task before it returns.
    public func append(_ entries: [JournalEntry]) async throws(JournalError) {
        if writer == .inline { return try appendBlocking(entries) }
        let frames = try Self.frames(entries)
        // Unchecked: a checked continuation is one more allocation per append, and every
        // batch is resumed exactly once — by `enqueue` when refused, else by the writer,
        // which drains the queue before it stops.
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<Void, JournalError>, Never>) in
            enqueue(PendingBatch(frames: frames, entries: entries, waiter: .async(continuation)))
        }
        try result.get()
    }

    /// Like `append`, but blocks the calling thread. For tools, tests and single-threaded callers.
    public func appendBlocking(_ entries: [JournalEntry]) throws(JournalError) {
        let frames = try Self.frames(entries)
        let box = BlockingResult()
        enqueue(PendingBatch(frames: frames, entries: entries, waiter: .blocking(box)))
        try box.wait().get()
    }

    /// Batches queued for the writer and not yet taken (for tests).
    var queuedBatchCount: Int {
        lock.withLock { queue.count }
    }

    /// Turns inline commits on (on a machine with two cores or more), asking `gate` just
    /// before each one, under the journal's lock: a false answer sends the batch to the
    /// writer thread. A node's gate says yes only while one channel has work, so appenders
    /// taking turns on a starved pool never commit one after another, a sync each.
    public func enableInlineCommits(when gate: @escaping @Sendable () -> Bool) {
        lock.withLock {
            inlineCommitGate = gate
            inlineCommitsOn = Journal.machineAllowsInlineCommits
        }
    }

    /// The failure that stopped the journal, if any. A stopped journal refuses every append.
    public var stoppedBecause: JournalError? {
        lock.withLock { failure }
    }

    public var statistics: Stats {
        lock.withLock { stats }
    }

    /// The channels as of the last durable append.
    public var channels: [ChannelID: ChannelRecord] {
        lock.withLock { table.channels }
    }

    /// Finishes pending appends, stops the writer thread and releases the directory.
    /// Call it when done: the writer thread holds the journal until then. With `.inline`,
    /// waits for an append being committed on another thread, if any.
    public func close() {
        let alreadyClosing = lock.withLock {
            defer { closing = true }
            lock.broadcast()
            return closing
        }
        guard !alreadyClosing else { return }
        lock.withLock {
            while writerActive || committing { lock.wait() }
        }
        fileSystem.close(fd)
        fileSystem.close(lockFD)
    }

    // MARK: - Writing (the writer thread, or the appender with `.inline`)

    /// Hands `batch` to the writer thread, or commits it here and now: with `.inline`
    /// always, with `.thread` when the journal is idle (see `commitsHere`). Either way, after
    /// the same checks, and its waiter has been or will be resumed exactly once.
    private func enqueue(_ batch: PendingBatch) {
        enum Admission { case refused(JournalError), queued, commitHere }
        let admission: Admission = lock.withLock {
            // Inline appenders take the commit role in turn (only contended off the simulator).
            if writer == .inline { while committing { lock.wait() } }
            if closing { return .refused(.closed) }
            if let failure { return .refused(.stopped(after: failure.description)) }
            if let reused = reusedChannelID(in: batch.entries) { return .refused(.channelExists(reused)) }
            if writer == .inline || commitsHere() {
                committing = true
                return .commitHere
            }
            queue.append(batch)
            if writerWaitsFor > 0 && queue.count >= writerWaitsFor { lock.broadcast() }
            return .queued
        }
        switch admission {
        case let .refused(refusal):
            batch.waiter.resume(.failure(refusal))
        case .queued:
            break
        case .commitHere where writer == .inline:
            commit([batch])
            lock.withLock {
                committing = false
                lock.broadcast()
            }
        case .commitHere:
            let result = write([batch])
            // The segment's upkeep goes to the writer thread: a zero-fill costs about a
            // millisecond, a compaction more, and neither belongs on an appender's thread.
            let upkeep = segmentNeedsUpkeep
            lock.withLock {
                committing = false
                previousCommitBatches = 1
                // Another appender queued while this one wrote: the journal is not idle.
                soloCommitStreak = queue.isEmpty ? soloCommitStreak + 1 : 0
                stats.inlineCommits += 1
                if case .success = result, upkeep { upkeepDue = true }
                // Wake the writer thread only for work (or `close()`, which waits for this
                // commit): an idle journal's writer sleeps through inline commits, and a
                // wake for nothing would cost it and this thread the two switches and the
                // lock contention that committing here saves (a trace showed it).
                if !queue.isEmpty || upkeepDue || closing { lock.broadcast() }
            }
            batch.waiter.resume(result)
        }
    }

    /// With `.thread`: whether an appender arriving now commits its batch itself. Only when
    /// nobody holds the commit role, nothing is queued or due, and the last few commits
    /// each carried one batch with nobody else waiting: then the writer thread would take
    /// this batch alone anyway, and handing it over and waking the appender afterwards
    /// costs two thread hand-offs. Under load batches go to the writer thread, which
    /// gathers them into group commits, and no appender's thread blocks on the disk (an
    /// appender's thread is one of the cooperative pool's few: blocked in a sync, it runs
    /// no other task, and other appenders could not even reach the queue). Under `lock`.
    ///
    /// The journal alone cannot tell a lone appender from appenders that take turns on a
    /// starved pool (every other pool thread blocked by other code, so the waiting tasks
    /// run one after another, each finding the journal idle): inline, each of those would
    /// get a sync of its own. So inline commits are off unless the owner, who knows who
    /// appends, turns them on with a gate (`enableInlineCommits(when:)`): a node allows them
    /// only while one channel has work.
    private func commitsHere() -> Bool {
        guard inlineCommitsOn, !committing, queue.isEmpty, !upkeepDue,
            soloCommitStreak >= Self.soloCommitsBeforeInline
        else { return false }
        return inlineCommitGate?() ?? true
    }

    /// The segment is full (compact) or the zeros ahead of the last record run low: what
    /// `tendSegment` would do something about. Called by whoever holds the commit role.
    private var segmentNeedsUpkeep: Bool {
        segmentBytes >= maxSegmentBytes || zerosAheadRunLow
    }

    /// Less than half of `preallocationBytes` is left after the last record (never with
    /// preallocation off). Called by whoever holds the commit role.
    private var zerosAheadRunLow: Bool {
        preallocationBytes > 0 && allocatedBytes - segmentBytes < preallocationBytes / 2
    }

    /// The first `opened` entry naming a channel already opened (in the journal, queued, or
    /// earlier in `entries`); otherwise records every opened id as queued. Under `lock`.
    private func reusedChannelID(in entries: [JournalEntry]) -> ChannelID? {
        var fresh: [ChannelID] = []
        for entry in entries {
            guard case .engine(.opened) = entry.body else { continue }
            let id = entry.channelID
            if table.channels[id] != nil || queuedOpenIDs.contains(id) || fresh.contains(id) { return id }
            fresh.append(id)
        }
        queuedOpenIDs.formUnion(fresh)
        return nil
    }

    private func writerLoop() {
        while var batches = nextBatches() {
            if !batches.isEmpty { commit(batches) } else { tendSegment() }
            batches.removeAll(keepingCapacity: true)
            lock.withLock {
                recycledQueue = batches
                committing = false
                lock.broadcast()
            }
        }
        lock.withLock {
            writerActive = false
            lock.broadcast()
        }
    }

    /// After a successful commit (the writer's own, or a lone appender's, then as `upkeepDue`):
    /// compaction when the segment is full, else zeros ahead if they run low. With the
    /// commit role.
    private func tendSegment() {
        if segmentBytes >= maxSegmentBytes {
            do { try compact() } catch { stop(error) }
        } else {
            preallocateIfLow()
        }
    }

    /// Writes `batches` (one group commit), tells their waiters, and compacts once the
    /// segment is full. Called by whoever holds the writer's role, without `lock`.
    private func commit(_ batches: [PendingBatch]) {
        let result = write(batches)
        for batch in batches { batch.waiter.resume(result) }
        guard case .success = result else { return }
        tendSegment()
    }

    /// When less than half of `preallocationBytes` is left after the last record, writes
    /// zeros up to `preallocationBytes` past it and syncs them. Runs after a commit's waiters
    /// were answered, so its cost falls between commits, not inside one. A failure (say, the
    /// disk is full) is not the journal's failure: the zeros are padding either way, and
    /// records are still appended past the end, at the cost of a sync that flushes the size.
    private func preallocateIfLow() {
        guard zerosAheadRunLow else { return }
        let start = max(allocatedBytes, segmentBytes)
        let end = segmentBytes + preallocationBytes
        let path = currentSegmentPath
        do {
            try fileSystem.write(fd, [UInt8](repeating: 0, count: end - start), at: start, path: path)
            try fileSystem.sync(fd, path: path)
        } catch {
            return
        }
        allocatedBytes = end
        lock.withLock {
            stats.preallocations += 1
            stats.preallocatedBytes += end - start
        }
    }

    /// Everything queued, or nil when closing with nothing left; empty when the only work
    /// is the upkeep a lone appender left due. Waits for the first batch and for the commit
    /// role (a lone appender may hold it); then, if the previous commit was shared, gathers
    /// more for a bounded time. Returns holding the commit role.
    private func nextBatches() -> [PendingBatch]? {
        lock.withLock {
            writerWaitsFor = 1
            while (queue.isEmpty && !upkeepDue || committing) && !closing { lock.wait() }
            while committing { lock.wait() }  // closing: a lone appender finishes its commit
            committing = true
            if upkeepDue {
                upkeepDue = false
                writerWaitsFor = 0
                return []
            }
            let gathering = previousCommitBatches >= 2 && groupCommitWindow > .zero
            let target = gathering ? min(previousCommitBatches, Self.gatherBatchLimit) : 1
            if queue.count < target && !closing {
                writerWaitsFor = target
                stats.gatheringWaits += 1
                let deadline = ConditionLock.deadline(after: groupCommitWindow)
                while queue.count < target && !closing && lock.wait(until: deadline) {}
            }
            writerWaitsFor = 0
            guard !queue.isEmpty else {
                committing = false
                return nil
            }
            previousCommitBatches = queue.count
            soloCommitStreak = queue.count == 1 ? soloCommitStreak + 1 : 0
            // Hand the queued batches over and give the queue the previous commit's
            // (empty) storage, so neither side copies or allocates an array.
            var taken: [PendingBatch] = []
            swap(&taken, &recycledQueue)
            swap(&taken, &queue)
            return taken
        }
    }

    /// One write and (with `.fsync`) one sync for all waiting batches: the group commit.
    private func write(_ batches: [PendingBatch]) -> Result<Void, JournalError> {
        if let failure = lock.withLock({ failure }) { return .failure(.stopped(after: failure.description)) }
        let bytes: [UInt8]
        if batches.count == 1 {
            bytes = batches[0].frames  // a lone appender: write its frames as they are
        } else {
            var joined: [UInt8] = []
            joined.reserveCapacity(batches.reduce(0) { $0 + $1.frames.count })
            for batch in batches { joined += batch.frames }
            bytes = joined
        }
        let path = currentSegmentPath
        do {
            // At the end of the last record: over zeros written ahead, or past the file's end.
            try fileSystem.write(fd, bytes, at: segmentBytes, path: path)
            if durability == .fsync {
                let start = ContinuousClock.now
                try fileSystem.sync(fd, path: path)
                metrics.fsync.record(duration: ContinuousClock.now - start)
            }
        } catch {
            stop(error)
            return .failure(error)
        }
        segmentBytes += bytes.count
        allocatedBytes = max(allocatedBytes, segmentBytes)
        metrics.commits.increment()
        metrics.appends.increment(by: batches.reduce(0) { $0 + $1.entries.count })
        lock.withLock {
            for batch in batches {
                for entry in batch.entries {
                    table.apply(entry)
                    if case .engine(.opened) = entry.body { queuedOpenIDs.remove(entry.channelID) }
                }
                stats.records += batch.entries.count
            }
            stats.batches += 1
            if durability == .fsync { stats.syncs += 1 }
        }
        return .success(())
    }

    private func stop(_ error: JournalError) {
        lock.withLock {
            if failure == nil { failure = error }
        }
    }

    /// Starts a new segment holding one snapshot per channel, then deletes the older ones.
    ///
    /// Crash safety: the old segments are removed only after the new one and
    /// the directory entry for it are durable, so at every instant the
    /// surviving files replay to the same channels.
    private func compact() throws(JournalError) {
        let next = segmentIndex + 1
        let path = segmentPath(next)
        var bytes = SegmentFormat.header(index: next)
        let snapshot = lock.withLock { table.channels }
        for (id, record) in snapshot.sorted(by: { $0.key.description < $1.key.description }) {
            SegmentFormat.frame(JournalEntry(channelID: id, body: .snapshot(record)).wireBytes, into: &bytes)
        }
        let newFD = try fileSystem.openForWriting(path, create: true)
        do {
            try fileSystem.write(newFD, bytes, at: 0, path: path)
            try fileSystem.sync(newFD, path: path)
            try fileSystem.syncDirectory(directory)
        } catch {
            fileSystem.close(newFD)
            throw error
        }
        fileSystem.close(fd)
        let old = segmentIndex
        fd = newFD
        segmentIndex = next
        currentSegmentPath = path
        segmentBytes = bytes.count
        allocatedBytes = bytes.count
        for index in try JournalContents.segmentIndices(directory: directory, fileSystem: fileSystem) where index <= old {
            try fileSystem.remove(segmentPath(index))
        }
        try fileSystem.syncDirectory(directory)
        lock.withLock {
            stats.compactions += 1
            stats.syncs += 3
        }
    }

    private func segmentPath(_ index: UInt64) -> String {
        directory + "/" + SegmentFormat.fileName(index: index)
    }

    // MARK: - Opening

    /// The framed records for `entries` (the layout of `SegmentFormat.frame`), each entry
    /// encoded straight into one buffer after a placeholder header that is filled in once
    /// the payload's length and checksum are known: one allocation per append.
    private static func frames(_ entries: [JournalEntry]) throws(JournalError) -> [UInt8] {
        let headerBytes = SegmentFormat.recordHeaderBytes
        var writer = WireWriter(reservingCapacity: entries.count * (headerBytes + WireWriter.typicalEncodingBytes))
        for entry in entries {
            let headerStart = writer.bytes.count
            writer.write(UInt32(0))  // payload length, filled in below
            writer.write(UInt32(0))  // CRC-32C of the payload, filled in below
            let payloadStart = writer.bytes.count
            entry.encode(to: &writer)
            let payloadCount = writer.bytes.count - payloadStart
            guard payloadCount <= SegmentFormat.maxRecordBytes else {
                throw .recordTooLarge(bytes: payloadCount, limit: SegmentFormat.maxRecordBytes)
            }
            let checksum = CRC32C.checksum(writer.bytes[payloadStart...])
            writer.overwrite(UInt32(payloadCount), at: headerStart)
            writer.overwrite(checksum, at: headerStart + MemoryLayout<UInt32>.size)
        }
        return writer.bytes
    }

    /// Truncates a torn tail, or creates the first segment, and opens the last segment for
    /// writing. Returns the descriptor, the segment's index, where its records end and the
    /// file's size (zeros written ahead of the records stay for the next records).
    private static func prepareTail(
        _ found: JournalContents, directory: String, fileSystem: any JournalFileSystem
    ) throws(JournalError) -> (Int32, UInt64, Int, Int) {
        guard let last = found.segments.last else {
            return try createSegment(index: 1, directory: directory, fileSystem: fileSystem)
        }
        let path = directory + "/" + SegmentFormat.fileName(index: last.index)
        if found.tornBytes > 0 {
            try fileSystem.truncate(path, to: last.validLength)
        }
        if last.validLength == 0 {
            // The crash came while the header was written: start the segment again.
            try fileSystem.remove(path)
            try fileSystem.syncDirectory(directory)
            return try createSegment(index: last.index, directory: directory, fileSystem: fileSystem)
        }
        let fd = try fileSystem.openForWriting(path, create: false)
        if found.tornBytes > 0 { try fileSystem.sync(fd, path: path) }
        return (fd, last.index, last.validLength, last.validLength + last.paddingBytes)
    }

    private static func createSegment(
        index: UInt64, directory: String, fileSystem: any JournalFileSystem
    ) throws(JournalError) -> (Int32, UInt64, Int, Int) {
        let path = directory + "/" + SegmentFormat.fileName(index: index)
        let header = SegmentFormat.header(index: index)
        let fd = try fileSystem.openForWriting(path, create: true)
        try fileSystem.write(fd, header, at: 0, path: path)
        try fileSystem.sync(fd, path: path)
        try fileSystem.syncDirectory(directory)
        return (fd, index, header.count, header.count)
    }
}

/// Everything read from a journal directory, without modifying it.
public struct JournalContents: Sendable {
    public struct Segment: Sendable {
        public var index: UInt64
        public var name: String
        public var validLength: Int
        /// Zeros after the last record (space allocated ahead), not damage.
        public var paddingBytes: Int
        public var records: Int
    }

    public var segments: [Segment] = []
    public var table = ChannelTable()
    public var entries: [JournalEntry] = []
    public var recordsRead = 0
    public var tornBytes = 0

    /// Reads every segment in order. Read-only: a torn tail is reported, not removed.
    public static func read(
        directory: String, fileSystem: any JournalFileSystem = POSIXJournalFileSystem(), keepEntries: Bool = false
    ) throws(JournalError) -> JournalContents {
        var contents = JournalContents()
        let indices = try segmentIndices(directory: directory, fileSystem: fileSystem)
        for (position, index) in indices.enumerated() {
            let name = SegmentFormat.fileName(index: index)
            let bytes = try fileSystem.readFile(directory + "/" + name)
            let scan = try SegmentFormat.scan(bytes, name: name, expectedIndex: index, isLast: position == indices.count - 1)
            for entry in scan.entries { contents.table.apply(entry) }
            if keepEntries { contents.entries += scan.entries }
            contents.recordsRead += scan.entries.count
            contents.tornBytes += scan.tornBytes
            contents.segments.append(Segment(
                index: index, name: name, validLength: scan.validLength, paddingBytes: scan.paddingBytes,
                records: scan.entries.count))
        }
        return contents
    }

    static func segmentIndices(directory: String, fileSystem: any JournalFileSystem) throws(JournalError) -> [UInt64] {
        try fileSystem.listDirectory(directory).compactMap(SegmentFormat.index(ofFileName:)).sorted()
    }
}

// MARK: - Synchronisation helpers

/// A batch waiting for the writer, with whoever waits for it.
private struct PendingBatch {
    let frames: [UInt8]
    let entries: [JournalEntry]
    let waiter: Waiter
}

private enum Waiter {
    case async(UnsafeContinuation<Result<Void, JournalError>, Never>)
    case blocking(BlockingResult)

    func resume(_ result: Result<Void, JournalError>) {
        switch self {
        case let .async(continuation): continuation.resume(returning: result)
        case let .blocking(box): box.deliver(result)
        }
    }
}

/// A one-shot result a blocked thread waits for.
private final class BlockingResult: @unchecked Sendable {
    private let lock = ConditionLock()
    private var result: Result<Void, JournalError>?

    func deliver(_ value: Result<Void, JournalError>) {
        lock.withLock {
            result = value
            lock.broadcast()
        }
    }

    func wait() -> Result<Void, JournalError> {
        lock.withLock {
            while result == nil { lock.wait() }
            return result ?? .failure(.closed)
        }
    }
}
