import CLibUV

/// Small adapters between Swift and libuv's C conventions, shared by the
/// loop, timers and TCP handles.
enum UV {
    /// libuv's end-of-stream code as delivered to read callbacks.
    static let endOfFile = Int32(UV_EOF.rawValue)
    /// Reported to write and connect callbacks whose handle was closed first.
    static let cancelled = Int32(UV_ECANCELED.rawValue)
    /// A non-blocking operation that would have blocked.
    static let wouldBlock = Int32(UV_EAGAIN.rawValue)
    static let connectionRefused = Int32(UV_ECONNREFUSED.rawValue)

    /// The human-readable text libuv gives for an error code, e.g. "connection refused".
    static func message(_ code: Int32) -> String {
        String(cString: uv_strerror(code))
    }

    /// The symbolic name of an error code, e.g. "ECONNREFUSED".
    static func name(_ code: Int32) -> String {
        String(cString: uv_err_name(code))
    }

    /// A zero-filled handle or request on the heap. Its address must stay
    /// fixed while libuv knows about it, so it never lives in a Swift value.
    static func allocate<Handle>(_ type: Handle.Type) -> UnsafeMutablePointer<Handle> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Handle>.size, alignment: MemoryLayout<Handle>.alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<Handle>.size)
        return raw.bindMemory(to: Handle.self, capacity: 1)
    }

    /// Frees memory from `allocate` (libuv structs are trivial, nothing to deinitialise).
    static func free<Handle>(_ pointer: UnsafeMutablePointer<Handle>) {
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// Any libuv handle type viewed as the base `uv_handle_t` (C's struct prefix cast).
    static func handle<Handle>(_ pointer: UnsafeMutablePointer<Handle>) -> UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutablePointer<uv_handle_t>(OpaquePointer(pointer))
    }

    /// A TCP handle viewed as the `uv_stream_t` the stream functions take.
    static func stream(_ pointer: UnsafeMutablePointer<uv_tcp_t>) -> UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutablePointer<uv_stream_t>(OpaquePointer(pointer))
    }
}

/// A close callback for handles that nothing else refers to: frees the memory.
func uvFreeHandleOnClose(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    if let handle { UV.free(handle) }
}

/// Something that owns a libuv handle on an `EventLoop` and can close it
/// when the loop shuts down. The handle's `data` field points at the owner.
protocol LoopResource: AnyObject {
    /// Called on the loop thread while the loop shuts down; must start
    /// closing the handle (idempotently) and fail anything still waiting.
    func closeForShutdown()
}

/// Something holding output for a loop that `EventLoop.flushBeforeNextPoll(_:)` writes out
/// before the loop waits for I/O again.
protocol LoopFlushable: AnyObject {
    /// Called on the loop thread.
    func flush()
}

extension Duration {
    /// Whole milliseconds, rounded up so a timer never fires early; negative is zero.
    var uvMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let maxSeconds = Int64(UInt64.max / 1000) - 1
        let wholeMilliseconds = UInt64(min(seconds, maxSeconds)) * 1000
        let fraction = attoseconds / attosecondsPerMillisecond
        let remainder = attoseconds % attosecondsPerMillisecond
        return wholeMilliseconds + UInt64(max(fraction, 0)) + (remainder > 0 ? 1 : 0)
    }
}
