#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex on the heap, so its address never moves.
///
/// Used instead of `Synchronization.Mutex` for state shared with the libuv
/// loop thread: ThreadSanitizer models pthread mutexes exactly, and the
/// critical sections here are a handful of instructions.
public final class PThreadLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed with \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    public func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
}

/// A value guarded by a `PThreadLock`: the library modules' shared mutable state.
///
/// Used instead of `Synchronization.Mutex` throughout the library. `Mutex` on Linux waits
/// with raw futex calls, which ThreadSanitizer does not model: every access under it was
/// reported as a race (`swift test --sanitize=thread`), hiding any real one.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let lock = PThreadLock()
    private var value: Value

    public init(_ value: consuming Value) {
        self.value = value
    }

    /// Runs `body` with the value while holding the lock. As with `Mutex`, the value and
    /// the result cross isolation only as `sending`, so nothing guarded escapes the lock
    /// while still shared; that is what makes the class Sendable for any `Value`.
    public func withLock<Result: ~Copyable, Failure: Error>(
        _ body: (inout sending Value) throws(Failure) -> sending Result
    ) throws(Failure) -> sending Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
