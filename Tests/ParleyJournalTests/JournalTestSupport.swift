import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleyWire

enum JournalFixtures {
    static func key(_ n: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    static let alice = key(1)
    static let bob = key(2)

    static func params(nonce: UInt8 = 7) -> ChannelParams {
        try! ChannelParams(
            participants: [alice.publicKey, bob.publicKey], nonce: [UInt8](repeating: nonce, count: 32),
            challengeDuration: 60)
    }

    static func state(_ params: ChannelParams, version: UInt64, _ a: Amount, _ b: Amount) -> ChannelState {
        ChannelState(channelID: params.id, version: version, allocation: Allocation(a, b))
    }

    static func signed(_ state: ChannelState, by signers: [ParticipantIndex]) -> SignedState {
        var signed = SignedState(state: state)
        for signer in signers { signed[signer] = state.signed(by: signer == .first ? alice : bob) }
        return signed
    }

    /// opened, then committed versions 0...count of a channel funded (100, 100), paying 1 each time.
    static func history(_ params: ChannelParams, count: UInt64) -> [JournalEntry] {
        var entries = [JournalEntry(.opened(params, funding: Allocation(100, 100)), channelID: params.id)]
        for version in 0...count {
            let state = state(params, version: version, 100 - Amount(version % 100), 100 + Amount(version % 100))
            entries.append(JournalEntry(.committed(signed(state, by: [.first, .second])), channelID: params.id))
        }
        return entries
    }
}

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TempDirectory {
    let path: String

    init(_ label: String = "journal") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    var segments: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("segment-") }.sorted()
    }

    func bytes(of name: String) -> [UInt8] {
        Array((try? Data(contentsOf: URL(fileURLWithPath: path + "/" + name))) ?? Data())
    }

    func write(_ bytes: [UInt8], to name: String) {
        try? Data(bytes).write(to: URL(fileURLWithPath: path + "/" + name))
    }
}

/// Wraps the real file system: counts syncs and can fail writes or syncs on demand.
/// Tests that count syncs exactly open their journal with `preallocationBytes: 0`: a
/// zero-fill ahead of the records has a sync of its own, after the commit it follows.
final class InstrumentedFileSystem: JournalFileSystem, @unchecked Sendable {
    private let real = POSIXJournalFileSystem()
    private let lock = NSLock()
    private var _syncs = 0
    private var _writes = 0
    /// Fail every write after this many have succeeded.
    var failWritesAfter: Int?
    var failSyncs = false
    /// Sleep inside each sync, to make concurrent appends pile up behind it.
    var syncDelay: TimeInterval = 0

    private var _syncCalls = 0
    private var _syncGate: DispatchSemaphore?
    /// While set, each sync waits for one signal of this semaphore before it runs.
    var syncGate: DispatchSemaphore? {
        get { lock.withLock { _syncGate } }
        set { lock.withLock { _syncGate = newValue } }
    }

    private var _failZeroFills = false
    /// While set, every write of zeros only (a zero-fill ahead of the records) fails with ENOSPC.
    var failZeroFills: Bool {
        get { lock.withLock { _failZeroFills } }
        set { lock.withLock { _failZeroFills = newValue } }
    }

    var syncs: Int { lock.withLock { _syncs } }
    /// Syncs started (finished or not).
    var syncCalls: Int { lock.withLock { _syncCalls } }
    var writes: Int { lock.withLock { _writes } }

    func createDirectory(_ path: String) throws(JournalError) { try real.createDirectory(path) }
    func listDirectory(_ path: String) throws(JournalError) -> [String] { try real.listDirectory(path) }
    func readFile(_ path: String) throws(JournalError) -> [UInt8] { try real.readFile(path) }
    func openForWriting(_ path: String, create: Bool) throws(JournalError) -> Int32 {
        try real.openForWriting(path, create: create)
    }

    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(JournalError) {
        if lock.withLock({ _failZeroFills }), !bytes.isEmpty, bytes.allSatisfy({ $0 == 0 }) { throw .diskFull(path: path) }
        let shouldFail = lock.withLock { () -> Bool in
            if let limit = failWritesAfter, _writes >= limit { return true }
            _writes += 1
            return false
        }
        if shouldFail { throw .diskFull(path: path) }
        try real.write(fd, bytes, at: offset, path: path)
    }

    func sync(_ fd: Int32, path: String) throws(JournalError) {
        if lock.withLock({ failSyncs }) { throw .io(operation: "fsync", path: path, errno: EIO) }
        let gate = lock.withLock { () -> DispatchSemaphore? in
            _syncCalls += 1
            return _syncGate
        }
        gate?.wait()
        if syncDelay > 0 { Thread.sleep(forTimeInterval: syncDelay) }
        try real.sync(fd, path: path)
        lock.withLock { _syncs += 1 }
    }

    func syncDirectory(_ path: String) throws(JournalError) { try real.syncDirectory(path) }
    func truncate(_ path: String, to length: Int) throws(JournalError) { try real.truncate(path, to: length) }
    func remove(_ path: String) throws(JournalError) { try real.remove(path) }
    func lockExclusively(_ path: String) throws(JournalError) -> Int32 { try real.lockExclusively(path) }
    func close(_ fd: Int32) { real.close(fd) }
}
