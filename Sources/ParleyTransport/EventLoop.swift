import CLibUV
import ParleyLocks
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A libuv loop running on its own thread for its whole life.
///
/// Threading contract:
/// - Every libuv handle of this loop is created, used and closed on the loop
///   thread. Objects that own handles (`TCPConnection`, `TCPListener`, timers)
///   keep their mutable state loop-confined and hop here from their public
///   methods.
/// - Any thread may call `execute`, `submit`, `schedule`, `connect`, `listen`:
///   the work goes into a queue guarded by a pthread mutex and a `uv_async_t`
///   wakes the loop, which drains the queue in FIFO order.
/// - The loop blocks in `uv_run(UV_RUN_DEFAULT)`; the wake-up handle keeps it
///   alive, so an idle loop costs no CPU.
/// - Output is coalesced per loop iteration: owners of outgoing bytes register with
///   `flushBeforeNextPoll(_:)` and a `uv_prepare_t` handle flushes them right before the
///   loop next blocks, so everything queued by one batch of callbacks leaves together.
///
/// Call `shutdown()` when done: the loop thread holds a reference to the
/// loop, so a loop that is never shut down lives (and keeps its thread) until
/// the process exits.
/// libuv writes to sockets with write(2): a peer that closed its end raises SIGPIPE, whose
/// default action kills the process. Every process that runs a loop ignores it once, so a
/// vanished peer is an `EPIPE` error on that connection, never the end of the node.
private let ignoreBrokenPipes: Void = {
    signal(SIGPIPE, SIG_IGN)
}()

public final class EventLoop: @unchecked Sendable {
    /// Size of the buffer every read on this loop lands in before it is copied out.
    public static let readBufferSize = 64 * 1024

    /// The thread's name (as shown in debuggers; Linux keeps 15 bytes).
    public let name: String

    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    /// Runs `flushPending()` before each poll; unreferenced, so it never keeps the loop alive.
    private let beforePoll: UnsafeMutablePointer<uv_prepare_t>
    private var pendingFlushes: [any LoopFlushable] = []  // loop-confined
    private var spareFlushes: [any LoopFlushable] = []  // loop-confined, swapped with pendingFlushes

    /// One buffer shared by all reads on this loop. libuv on Unix calls the
    /// alloc callback and then the read callback for the same handle with no
    /// other callback between them, and the read callback copies the bytes
    /// out, so a single buffer is never used by two reads at once.
    let readBuffer: UnsafeMutableRawPointer

    private let queueLock = PThreadLock()
    private var pendingWork: [@Sendable () -> Void] = []  // guarded by queueLock
    private var spareWork: [@Sendable () -> Void] = []  // loop-confined, swapped with pendingWork
    private var acceptsWork = true  // guarded by queueLock
    private var loopCloseStatus: Int32?  // guarded by queueLock

    /// Serialises `shutdown()` callers; the second one waits for the first.
    private let shutdownLock = PThreadLock()
    private var thread: EventLoopThread?  // guarded by shutdownLock; nil once joined

    /// Loop-confined: true once shutdown has started closing handles. From
    /// then on nothing may open a new handle, or `uv_run` would never return.
    private(set) var isClosingHandles = false

    private static let loopCounter = Atomic<Int>(0)
    /// `TCPConnection` objects of this loop not yet deinitialised.
    let connectionObjects = Atomic<Int>(0)

    /// Starts a loop and its thread.
    /// - Parameter name: thread name prefix; a sequence number is appended.
    public init(name: String = "parley-uv") throws(EventLoopError) {
        _ = ignoreBrokenPipes
        let number = EventLoop.loopCounter.wrappingAdd(1, ordering: .relaxed).newValue
        self.name = "\(name)-\(number)"
        uvLoop = UV.allocate(uv_loop_t.self)
        wakeup = UV.allocate(uv_async_t.self)
        beforePoll = UV.allocate(uv_prepare_t.self)
        readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)

        var status = uv_loop_init(uvLoop)
        if status == 0 {
            status = uv_async_init(uvLoop, wakeup, eventLoopWakeupCallback)
            if status != 0 { uv_loop_close(uvLoop) }
        }
        guard status == 0 else {
            loopCloseStatus = 0
            throw .initFailed(code: status, message: UV.message(status))
        }
        uvLoop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        // uv_prepare_init and uv_prepare_start only link the handle into the loop; they cannot fail.
        uv_prepare_init(uvLoop, beforePoll)
        beforePoll.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_prepare_start(beforePoll, eventLoopBeforePollCallback)
        uv_unref(UV.handle(beforePoll))

        switch EventLoopThread.start(self) {
        case let .success(thread):
            self.thread = thread
        case let .failure(error):
            // The loop never ran: close the wake-up handles and the loop here.
            uv_close(UV.handle(wakeup), nil)
            uv_close(UV.handle(beforePoll), nil)
            uv_run(uvLoop, UV_RUN_DEFAULT)
            loopCloseStatus = uv_loop_close(uvLoop)
            throw error
        }
    }

    deinit {
        // The loop thread held a reference until it exited, so the loop is
        // closed by now. A loop that failed to close still has handles that
        // point into it: leak it rather than free memory libuv may touch.
        if loopCloseStatus == 0 {
            UV.free(wakeup)
            UV.free(beforePoll)
            UV.free(uvLoop)
        }
        readBuffer.deallocate()
    }

    /// True when called on this loop's thread.
    public var isOnLoopThread: Bool {
        pthread_getspecific(loopThreadKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Runs `work` on the loop thread, after all work enqueued before it.
    /// After `shutdown()` has begun the work is dropped.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        enqueue(work)
    }

    /// Runs `work` on the loop thread and returns its result to the caller.
    /// - Throws: `EventLoopError.shutDown` if the loop no longer takes work,
    ///   or whatever `work` throws.
    public func submit<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let accepted = enqueue {
                continuation.resume(with: Result { try work() })
            }
            if !accepted { continuation.resume(throwing: EventLoopError.shutDown) }
        }
    }

    /// Runs `work` on the loop thread once `delay` has passed (millisecond
    /// resolution, never early). Timers with equal deadlines fire in the
    /// order they were scheduled. After `shutdown()` the work never runs.
    @discardableResult
    public func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) -> TimerHandle {
        let timer = LoopTimer(loop: self)
        runOnLoop { timer.start(after: delay, fire: work) }
        return TimerHandle(timer: timer)
    }

    /// Closes every handle of the loop, lets their close callbacks run, stops
    /// the loop, joins its thread and closes the loop.
    ///
    /// Idempotent and callable from any thread but the loop's own (where it
    /// would wait for itself). Open connections are closed with
    /// `TCPCloseReason.localClose(EventLoop.shutdownReason)` and their
    /// `onClose` handlers run; suspended senders, connects and sleeps fail
    /// with a typed error. Work enqueued before this call runs first; work
    /// enqueued after it is refused.
    public func shutdown() {
        precondition(!isOnLoopThread, "EventLoop.shutdown() called on its own loop thread would wait for itself")
        shutdownLock.withLock {
            guard let thread else { return }
            queueLock.withLock {
                acceptsWork = false
                uv_async_send(wakeup)
            }
            thread.join()
            self.thread = nil
        }
    }

    /// How many libuv handles (listeners, connections, timers) are open on the loop,
    /// not counting its own wake-up and flush handles. For diagnostics and leak checks: after
    /// every connection to a listener has ended it is back where it was.
    /// - Throws: `EventLoopError.shutDown` once the loop no longer takes work.
    public func openHandleCount() async throws -> Int {
        try await submit { [self] in
            var count = 0
            withUnsafeMutablePointer(to: &count) { counter in
                uv_walk(uvLoop, eventLoopCountWalkCallback, UnsafeMutableRawPointer(counter))
            }
            return count - EventLoop.ownHandleCount
        }
    }

    /// `TCPConnection` objects made on this loop that are still in memory (open, closing,
    /// or closed but still referenced). For leak checks: once every connection has ended
    /// and nothing refers to them, this is back to zero.
    public var liveConnectionCount: Int {
        connectionObjects.load(ordering: .relaxed)
    }

    /// The loop's own handles: the wake-up `uv_async_t` and the flush `uv_prepare_t`.
    static let ownHandleCount = 2

    /// The close reason reported by connections the shutdown closes.
    public static let shutdownReason = "event loop shut down"

    /// What `uv_loop_close` returned when the loop thread finished (0 is a clean
    /// close); nil while the loop runs.
    var closeStatus: Int32? {
        queueLock.withLock { loopCloseStatus }
    }

    // MARK: - Loop-thread internals

    /// Queues `work` for the loop thread; false once shutdown has begun.
    @discardableResult
    func enqueue(_ work: @escaping @Sendable () -> Void) -> Bool {
        queueLock.withLock {
            guard acceptsWork else { return false }
            pendingWork.append(work)
            // One wake-up per batch: the drain takes everything queued so far.
            if pendingWork.count == 1 { uv_async_send(wakeup) }
            return true
        }
    }

    /// Runs `work` now when already on the loop thread (keeping the caller's
    /// order), otherwise queues it.
    func runOnLoop(_ work: @escaping @Sendable () -> Void) {
        if isOnLoopThread { work() } else { enqueue(work) }
    }

    /// Queues `work`, or runs `rejected` on the calling thread if the loop no longer takes work.
    func runOnLoop(_ work: @escaping @Sendable () -> Void, orElse rejected: () -> Void) {
        if isOnLoopThread {
            work()
        } else if !enqueue(work) {
            rejected()
        }
    }

    /// Calls `item.flush()` on the loop thread after the callbacks of the current loop
    /// iteration and before the loop next waits for I/O (loop thread only). Registering
    /// twice flushes twice; owners keep a flag so they register once per batch.
    func flushBeforeNextPoll(_ item: any LoopFlushable) {
        pendingFlushes.append(item)
    }

    /// Prepare callback: flushes everything registered since the last poll, including
    /// anything a flush registers, so nothing waits in a buffer while the loop sleeps.
    fileprivate func flushPending() {
        while !pendingFlushes.isEmpty {
            var batch = spareFlushes
            swap(&batch, &pendingFlushes)
            for item in batch { item.flush() }
            batch.removeAll(keepingCapacity: true)
            spareFlushes = batch
        }
    }

    /// Body of the loop thread.
    func runOnThread() {
        pthread_setspecific(loopThreadKey, Unmanaged.passUnretained(self).toOpaque())
        EventLoopThread.nameCurrentThread(name)
        // Returns only once every handle, the wake-up handle included, has closed.
        uv_run(uvLoop, UV_RUN_DEFAULT)
        var status = uv_loop_close(uvLoop)
        var attempts = 0
        while status != 0 && attempts < 3 {
            // A handle opened after the close walk: close it and try again.
            closeAllHandles()
            uv_run(uvLoop, UV_RUN_DEFAULT)
            status = uv_loop_close(uvLoop)
            attempts += 1
        }
        // Flushes registered after the prepare handle closed hold their owners; let go.
        pendingFlushes.removeAll()
        queueLock.withLock { loopCloseStatus = status }
        pthread_setspecific(loopThreadKey, nil)
    }

    /// Wake-up callback: runs one batch of queued work, then starts closing
    /// everything if shutdown was requested before the batch was taken.
    fileprivate func drainQueue() {
        var batch = spareWork
        let stopping = queueLock.withLock {
            swap(&batch, &pendingWork)
            return !acceptsWork
        }
        for work in batch { work() }
        batch.removeAll(keepingCapacity: true)
        spareWork = batch
        if stopping && !isClosingHandles { closeAllHandles() }
    }

    /// Closes every handle not already closing. Owners close their own
    /// handles so their close callbacks free memory and resolve waiters.
    private func closeAllHandles() {
        isClosingHandles = true
        uv_walk(uvLoop, eventLoopCloseWalkCallback, UnsafeMutableRawPointer(wakeup))
    }
}

private func eventLoopWakeupCallback(_ handle: UnsafeMutablePointer<uv_async_t>?) {
    guard let data = handle?.pointee.data else { return }
    Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().drainQueue()
}

private func eventLoopBeforePollCallback(_ handle: UnsafeMutablePointer<uv_prepare_t>?) {
    guard let data = handle?.pointee.data else { return }
    Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().flushPending()
}

private func eventLoopCountWalkCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ counter: UnsafeMutableRawPointer?) {
    guard let handle, let counter, uv_is_closing(handle) == 0 else { return }
    counter.assumingMemoryBound(to: Int.self).pointee += 1
}

private func eventLoopCloseWalkCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ wakeup: UnsafeMutableRawPointer?) {
    guard let handle, uv_is_closing(handle) == 0 else { return }
    if UnsafeMutableRawPointer(handle) != wakeup,
       let data = handle.pointee.data,
       let owner = Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue() as? any LoopResource {
        owner.closeForShutdown()
    } else {
        // The wake-up handle (freed with the loop) or a handle no object owns.
        uv_close(handle, nil)
    }
}
