#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Marks the thread an `EventLoop` runs on, so `isOnLoopThread` is a
/// thread-local read instead of a lock.
let loopThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key, nil)
    precondition(status == 0, "pthread_key_create failed with \(status)")
    return key
}()

/// A joinable thread that runs one `EventLoop` for the loop's whole life.
///
/// Foundation's `Thread` cannot be joined; `EventLoop.shutdown()` must know
/// the thread has exited before it frees the loop, so this is a pthread.
struct EventLoopThread {
    private let thread: pthread_t

    /// Starts `loop.runOnThread()` on a new thread; the thread keeps the
    /// loop alive (one retain) until that function returns.
    static func start(_ loop: EventLoop) -> Result<EventLoopThread, EventLoopError> {
        let context = Unmanaged.passRetained(loop).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        let status = pthread_create(&thread, nil, { context in
            Unmanaged<EventLoop>.fromOpaque(context).takeRetainedValue().runOnThread()
            return nil
        }, context)
        guard status == 0, let thread else {
            Unmanaged<EventLoop>.fromOpaque(context).release()
            return .failure(.threadStartFailed(errno: status))
        }
        #else
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            Unmanaged<EventLoop>.fromOpaque(context).takeRetainedValue().runOnThread()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<EventLoop>.fromOpaque(context).release()
            return .failure(.threadStartFailed(errno: status))
        }
        #endif
        return .success(EventLoopThread(thread: thread))
    }

    /// Blocks until the thread has exited.
    func join() {
        pthread_join(thread, nil)
    }

    /// Names the calling thread (Linux keeps at most 15 bytes) so it shows in debuggers and /proc.
    static func nameCurrentThread(_ name: String) {
        let shortName = String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self)
        #if canImport(Darwin)
        pthread_setname_np(shortName)
        #else
        // pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module
        // lacks; the kernel's per-thread comm file does the same.
        let file = open("/proc/thread-self/comm", O_WRONLY)
        guard file >= 0 else { return }
        _ = shortName.withCString { write(file, $0, strlen($0)) }
        close(file)
        #endif
    }
}
