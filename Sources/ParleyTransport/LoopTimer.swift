import CLibUV

/// A one-shot `uv_timer_t` owned by a loop-confined object.
///
/// All methods run on the loop thread. The handle's `data` holds one retain
/// of the timer from `start` until the handle's close callback.
final class LoopTimer: LoopResource, @unchecked Sendable {
    let loop: EventLoop
    private var handle: UnsafeMutablePointer<uv_timer_t>?
    private var fire: (() -> Void)?
    private var abandon: (() -> Void)?
    private var isCancelled = false

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// Starts a timer on the loop thread and returns it.
    static func start(
        on loop: EventLoop, after delay: Duration,
        fire: @escaping () -> Void, abandon: (() -> Void)? = nil
    ) -> LoopTimer {
        let timer = LoopTimer(loop: loop)
        timer.start(after: delay, fire: fire, abandon: abandon)
        return timer
    }

    /// Arms the timer. `abandon` runs instead of `fire` if the timer is
    /// cancelled or the loop shuts down first.
    func start(after delay: Duration, fire: @escaping () -> Void, abandon: (() -> Void)? = nil) {
        guard !isCancelled, handle == nil, !loop.isClosingHandles else {
            abandon?()
            return
        }
        let handle = UV.allocate(uv_timer_t.self)
        uv_timer_init(loop.uvLoop, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        self.handle = handle
        self.fire = fire
        self.abandon = abandon
        // libuv measures from its cached clock, truncated to whole
        // milliseconds; refresh it and add one millisecond so the timer
        // never fires before `delay` has passed in real time.
        let milliseconds = delay.uvMilliseconds
        uv_update_time(loop.uvLoop)
        uv_timer_start(handle, loopTimerCallback, milliseconds == 0 ? 0 : milliseconds + 1, 0)
    }

    /// Stops the timer if it has not fired; runs `abandon` if it was armed.
    func cancel() {
        isCancelled = true
        let abandon = self.abandon
        closeHandle()
        abandon?()
    }

    func closeForShutdown() {
        cancel()
    }

    fileprivate func fired() {
        let fire = self.fire
        closeHandle()
        fire?()
    }

    private func closeHandle() {
        fire = nil
        abandon = nil
        guard let handle else { return }
        self.handle = nil
        uv_close(UV.handle(handle), loopTimerCloseCallback)
    }
}

private func loopTimerCallback(_ handle: UnsafeMutablePointer<uv_timer_t>?) {
    guard let data = handle?.pointee.data else { return }
    Unmanaged<LoopTimer>.fromOpaque(data).takeUnretainedValue().fired()
}

private func loopTimerCloseCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    if let data = handle.pointee.data {
        Unmanaged<LoopTimer>.fromOpaque(data).release()
    }
    UV.free(handle)
}

/// Cancels a timer made by `EventLoop.schedule(after:_:)`.
public final class TimerHandle: Sendable {
    private let timer: LoopTimer

    init(timer: LoopTimer) {
        self.timer = timer
    }

    /// Stops the timer if it has not fired yet. Safe from any thread and
    /// more than once; a timer that already fired is unaffected.
    public func cancel() {
        let timer = self.timer
        timer.loop.runOnLoop { timer.cancel() }
    }
}

extension EventLoop {
    /// Suspends the caller for `delay`, measured by a timer on this loop.
    /// - Throws: `CancellationError` if the task is cancelled first,
    ///   `TCPError.loopShutDown` if the loop shuts down first.
    func sleep(for delay: Duration) async throws {
        let box = SleepTimerBox()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                runOnLoop({ [self] in
                    let timer = LoopTimer(loop: self)
                    box.timer = timer
                    timer.start(after: delay, fire: { continuation.resume() }, abandon: { [self] in
                        continuation.resume(throwing: isClosingHandles ? TCPError.loopShutDown : CancellationError())
                    })
                    if box.isCancelled { timer.cancel() }
                }, orElse: { continuation.resume(throwing: TCPError.loopShutDown) })
            }
        } onCancel: {
            runOnLoop {
                box.isCancelled = true
                box.timer?.cancel()
            }
        }
    }
}

/// Loop-confined link between a sleep and its timer, so a cancellation
/// that arrives before the timer exists still cancels it.
private final class SleepTimerBox: @unchecked Sendable {
    var timer: LoopTimer?
    var isCancelled = false
}
