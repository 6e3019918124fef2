import CSodium

/// Secret bytes — a signing key, a seed, a key file's text — kept out of ordinary memory.
///
/// The memory comes from `sodium_malloc` (guard pages, locked against swapping, read-only
/// after initialization) or, if that fails, a plain allocation locked best-effort with
/// `sodium_mlock`. It is zeroed with `sodium_memzero` before it is freed. The contents never
/// change after `init`, which is why sharing across threads is safe.
public final class SecretBytes: @unchecked Sendable {
    public let count: Int
    private let base: UnsafeMutableRawPointer
    private let isGuarded: Bool
    private let isLocked: Bool
    /// Test hook: sees the buffer after it is zeroed and before it is freed.
    private let wipeObserver: (@Sendable (UnsafeRawBufferPointer) -> Void)?

    /// Allocates `count` bytes and lets `initializer` fill them. If it throws, the memory is
    /// wiped and freed and the error is rethrown.
    public convenience init<E: Error>(
        count: Int, initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        try self.init(count: count, wipeObserver: nil, initializer: initializer)
    }

    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: bytes.count) { buffer in buffer.copyBytes(from: bytes) }
    }

    init<E: Error>(
        count: Int,
        wipeObserver: (@Sendable (UnsafeRawBufferPointer) -> Void)?,
        initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        precondition(count >= 0, "SecretBytes count must not be negative")
        Sodium.ensureInitialized()
        // One byte minimum so the pointer is always real, even for an empty secret.
        let allocationSize = max(count, 1)
        let base: UnsafeMutableRawPointer
        let isGuarded: Bool
        var isLocked = false
        if let guarded = sodium_malloc(allocationSize) {
            base = guarded
            isGuarded = true
        } else {
            base = UnsafeMutableRawPointer.allocate(byteCount: allocationSize, alignment: MemoryLayout<UInt64>.alignment)
            isGuarded = false
            isLocked = sodium_mlock(base, allocationSize) == 0
        }
        sodium_memzero(base, allocationSize)
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: base, count: count))
        } catch {
            Self.release(base, count: allocationSize, guarded: isGuarded, locked: isLocked, observer: wipeObserver)
            throw error
        }
        if isGuarded { _ = sodium_mprotect_readonly(base) }
        self.count = count
        self.base = base
        self.isGuarded = isGuarded
        self.isLocked = isLocked
        self.wipeObserver = wipeObserver
    }

    deinit {
        Self.release(base, count: max(count, 1), guarded: isGuarded, locked: isLocked, observer: wipeObserver)
    }

    /// Read access to the secret. Do not let the pointer escape `body`.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The secret as a non-null byte pointer, for passing to libsodium.
    func withBytePointer<R>(_ body: (UnsafePointer<UInt8>) -> R) -> R {
        body(UnsafePointer(base.assumingMemoryBound(to: UInt8.self)))
    }

    private static func release(
        _ base: UnsafeMutableRawPointer, count: Int, guarded: Bool, locked: Bool,
        observer: (@Sendable (UnsafeRawBufferPointer) -> Void)?
    ) {
        if guarded { _ = sodium_mprotect_readwrite(base) }
        sodium_memzero(base, count)
        observer?(UnsafeRawBufferPointer(start: base, count: count))
        if guarded {
            sodium_free(base)
        } else {
            if locked { _ = sodium_munlock(base, count) }
            base.deallocate()
        }
    }
}
