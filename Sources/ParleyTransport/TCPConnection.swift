import CLibUV
import DequeModule
import Synchronization

/// An open TCP stream on an `EventLoop`.
///
/// State is confined to the loop thread; every public method is safe from
/// any thread and hops to the loop. The handle's `data` holds one retain of
/// the connection, released by the handle's close callback, so a connection
/// lives until it is closed (by either side, an error, or loop shutdown).
///
/// Sending has backpressure: `bytesQueued` counts bytes handed to libuv but
/// not yet written to the socket. While it is at or above the high-water
/// mark, `send` suspends (in FIFO order) until write completions drain it to
/// the low-water mark. One send is never split, so the queue peaks below
/// `highWaterMark + largest single send`.
public final class TCPConnection: @unchecked Sendable {
    /// Send-queue limits, in bytes.
    public struct Watermarks: Sendable, Equatable {
        /// At or above this many queued bytes, `send` suspends.
        public let high: Int
        /// Suspended senders resume once the queue drains to this many bytes.
        public let low: Int

        /// `low` is clamped to `0...high`; `high` to at least 1.
        public init(high: Int, low: Int) {
            self.high = max(1, high)
            self.low = min(max(0, low), self.high - 1)
        }

        /// 1 MiB high, 256 KiB low.
        public static let `default` = Watermarks(high: 1 << 20, low: 256 << 10)
    }

    /// Used by `connect` and `dial` when the caller gives no timeout.
    public static let defaultConnectTimeout: Duration = .seconds(10)

    public let eventLoop: EventLoop
    public let localAddress: SocketAddress
    public let remoteAddress: SocketAddress
    public let watermarks: Watermarks

    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private let queuedByteCount = Atomic<Int>(0)
    private let peakQueuedByteCount = Atomic<Int>(0)
    private let socketWriteCount = Atomic<Int>(0)

    private enum State {
        case open
        case closing(TCPCloseReason)
        case closed(TCPCloseReason)
    }

    private struct WaitingSend {
        let bytes: [UInt8]
        let accepted: (Result<Void, TCPError>) -> Void
    }

    // Loop-confined.
    private var state = State.open
    /// Set by `closeWhenWritten`: close once every queued byte has left.
    private var closeWhenDrained: String?
    private var onRead: (@Sendable ([UInt8]) -> Void)?
    private var onClose: (@Sendable (TCPCloseReason) -> Void)?
    private var wantsToRead = false
    private var isReading = false
    private var waitingSends = Deque<WaitingSend>()
    private var closeWaiters: [CheckedContinuation<TCPCloseReason, Never>] = []
    /// Called (loop thread) when write completions bring `bytesQueued` down to the
    /// low-water mark: a ``Session`` that holds frames back above the high-water mark
    /// flushes them then. Cleared when the connection closes.
    var onQueueDrained: (() -> Void)?

    /// Adopts a connected handle; called on the loop thread. Takes the retain
    /// the handle's `data` holds until the close callback.
    init(
        loop: EventLoop, handle: UnsafeMutablePointer<uv_tcp_t>,
        localAddress: SocketAddress, remoteAddress: SocketAddress, watermarks: Watermarks
    ) {
        eventLoop = loop
        self.handle = handle
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.watermarks = watermarks
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.connectionObjects.wrappingAdd(1, ordering: .relaxed)
    }

    deinit {
        eventLoop.connectionObjects.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Bytes handed to libuv and not yet written to the socket.
    public var bytesQueued: Int {
        queuedByteCount.load(ordering: .relaxed)
    }

    /// The largest `bytesQueued` has been on this connection.
    public var peakBytesQueued: Int {
        peakQueuedByteCount.load(ordering: .relaxed)
    }

    /// Installs the handlers and starts reading. Both run on the loop thread.
    ///
    /// `onRead` receives bytes in arrival order, in chunks of at most
    /// `EventLoop.readBufferSize`. `onClose` runs exactly once, after the
    /// socket is closed; if the connection is already closed it runs at once
    /// (on the caller's thread if the loop has shut down). Calling again
    /// replaces the handlers.
    public func setHandlers(
        onRead: @escaping @Sendable ([UInt8]) -> Void,
        onClose: @escaping @Sendable (TCPCloseReason) -> Void
    ) {
        eventLoop.runOnLoop({ [self] in
            switch state {
            case .open:
                self.onRead = onRead
                self.onClose = onClose
                wantsToRead = true
                updateReading()
            case .closing:
                self.onClose = onClose
            case let .closed(reason):
                onClose(reason)
            }
        }, orElse: { onClose(.localClose(EventLoop.shutdownReason)) })
    }

    /// Stops reading from the socket (the kernel's buffer then fills and the
    /// peer's sends slow down) until `resumeReading()`.
    public func pauseReading() {
        eventLoop.runOnLoop { [self] in
            wantsToRead = false
            updateReading()
        }
    }

    /// Undoes `pauseReading()`.
    public func resumeReading() {
        eventLoop.runOnLoop { [self] in
            wantsToRead = onRead != nil
            updateReading()
        }
    }

    /// Sends `bytes`, suspending while the send queue is above the
    /// high-water mark. Returns once libuv has written the bytes or queued
    /// them; a later write failure closes the connection and is reported to
    /// `onClose`.
    /// - Throws: `TCPError.connectionClosed` if the connection is closed
    ///   before the bytes are accepted.
    public func send(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            send(bytes) { continuation.resume(with: $0.mapError { $0 as Error }) }
        }
    }

    /// Callback form of `send(_:)` for code already on the loop thread
    /// (where it keeps the caller's order). `onAccepted` runs on the loop
    /// thread, or on the caller's thread if the loop has shut down.
    public func send(_ bytes: [UInt8], onAccepted: @escaping @Sendable (Result<Void, TCPError>) -> Void) {
        eventLoop.runOnLoop({ [self] in
            enqueueSend(bytes, accepted: onAccepted)
        }, orElse: { onAccepted(.failure(.connectionClosed(.localClose(EventLoop.shutdownReason)))) })
    }

    /// Closes the connection now; bytes still queued are discarded. Pending
    /// senders fail with `TCPError.connectionClosed(.localClose(reason))`.
    /// Idempotent: only the first reason is reported.
    public func close(reason: String = "closed by application") {
        eventLoop.runOnLoop { [self] in
            close(with: .localClose(reason))
        }
    }

    /// Closes the connection once every byte sent so far has been written to the socket
    /// (an answer followed by the end of the exchange). Senders after this call fail as
    /// after `close`; a write error closes at once, as always.
    public func closeWhenWritten(reason: String = "closed by application") {
        eventLoop.runOnLoop { [self] in
            guard case .open = state else { return }
            if bytesQueued == 0 && waitingSends.isEmpty {
                close(with: .localClose(reason))
            } else {
                closeWhenDrained = reason
            }
        }
    }

    /// Waits until the connection is closed and returns why.
    public func waitUntilClosed() async -> TCPCloseReason {
        await withCheckedContinuation { (continuation: CheckedContinuation<TCPCloseReason, Never>) in
            eventLoop.runOnLoop({ [self] in
                if case let .closed(reason) = state {
                    continuation.resume(returning: reason)
                } else {
                    closeWaiters.append(continuation)
                }
            }, orElse: { continuation.resume(returning: .localClose(EventLoop.shutdownReason)) })
        }
    }

    /// Writes started on the socket: each `uv_try_write` and each `uv_write` request. For
    /// tests that check that queued frames leave in one write.
    var socketWrites: Int {
        socketWriteCount.load(ordering: .relaxed)
    }

    /// Number of `send` calls suspended by backpressure (loop thread only).
    var suspendedSendCount: Int {
        waitingSends.count
    }

    /// The socket's descriptor while open (loop thread only; for diagnostics).
    var fileDescriptor: Int32? {
        guard case .open = state else { return nil }
        var descriptor = uv_os_fd_t()
        return uv_fileno(UV.handle(handle), &descriptor) == 0 ? descriptor : nil
    }

    // MARK: - Loop thread

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UV.stream(handle)
    }

    private func updateReading() {
        guard case .open = state, wantsToRead != isReading else { return }
        if wantsToRead {
            let status = uv_read_start(stream, tcpConnectionAllocCallback, tcpConnectionReadCallback)
            guard status == 0 else { return close(with: TCPCloseReason(errorCode: status)) }
            isReading = true
        } else {
            uv_read_stop(stream)
            isReading = false
        }
    }

    private func enqueueSend(_ bytes: [UInt8], accepted: @escaping (Result<Void, TCPError>) -> Void) {
        switch state {
        case let .closing(reason), let .closed(reason):
            return accepted(.failure(.connectionClosed(reason)))
        case .open:
            break
        }
        if bytes.isEmpty { return accepted(.success(())) }
        if !waitingSends.isEmpty || bytesQueued >= watermarks.high {
            waitingSends.append(WaitingSend(bytes: bytes, accepted: accepted))
            return
        }
        accepted(write(bytes))
    }

    /// Writes what the socket takes now and queues the rest in libuv.
    private func write(_ bytes: [UInt8]) -> Result<Void, TCPError> {
        var offset = 0
        if bytesQueued == 0 {
            // Nothing queued, so writing directly cannot reorder bytes.
            let written = bytes.withUnsafeBytes { tryWrite($0) }
            if written >= 0 {
                offset = Int(written)
            } else if written != UV.wouldBlock {
                return fail(TCPCloseReason(errorCode: written))
            }
        }
        while offset < bytes.count {
            let count = min(bytes.count - offset, PendingWrite.maxBytes)
            let status = bytes.withUnsafeBytes { raw in
                PendingWrite.start(on: stream, copying: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + count]))
            }
            socketWriteCount.wrappingAdd(1, ordering: .relaxed)
            guard status == 0 else { return fail(TCPCloseReason(errorCode: status)) }
            let queued = queuedByteCount.add(count)
            peakQueuedByteCount.raise(to: queued)
            offset += count
        }
        return .success(())
    }

    private func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard let base = bytes.baseAddress else { return 0 }
        let length = UInt32(min(bytes.count, PendingWrite.maxBytes))
        var buffer = uv_buf_init(UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: CChar.self)), length)
        socketWriteCount.wrappingAdd(1, ordering: .relaxed)
        return uv_try_write(stream, &buffer, 1)
    }

    private func fail(_ reason: TCPCloseReason) -> Result<Void, TCPError> {
        close(with: reason)
        return .failure(.connectionClosed(reason))
    }

    fileprivate func writeCompleted(byteCount: Int, status: Int32) {
        let queued = queuedByteCount.add(-byteCount)
        if status < 0 && status != UV.cancelled {
            close(with: TCPCloseReason(errorCode: status))
        } else if queued <= watermarks.low {
            admitWaitingSends()
            if case .open = state { onQueueDrained?() }
            if let reason = closeWhenDrained, bytesQueued == 0, waitingSends.isEmpty {
                close(with: .localClose(reason))
            }
        }
    }

    private func admitWaitingSends() {
        while case .open = state, bytesQueued < watermarks.high, let next = waitingSends.popFirst() {
            next.accepted(write(next.bytes))
        }
    }

    fileprivate func received(_ bytes: UnsafeRawBufferPointer) {
        guard case .open = state, let onRead else { return }
        onRead([UInt8](bytes))
    }

    fileprivate func readFailed(_ code: Int32) {
        close(with: TCPCloseReason(errorCode: code))
    }

    /// Starts closing the handle; the close callback finishes the job.
    private func close(with reason: TCPCloseReason) {
        guard case .open = state else { return }
        state = .closing(reason)
        if isReading {
            uv_read_stop(stream)
            isReading = false
        }
        let waiting = waitingSends
        waitingSends = []
        for send in waiting { send.accepted(.failure(.connectionClosed(reason))) }
        uv_close(UV.handle(handle), tcpConnectionCloseCallback)
    }

    fileprivate func didClose() {
        guard case let .closing(reason) = state else { return }
        state = .closed(reason)
        let onClose = self.onClose
        self.onRead = nil
        self.onClose = nil
        onQueueDrained = nil
        onClose?(reason)
        let waiters = closeWaiters
        closeWaiters = []
        for waiter in waiters { waiter.resume(returning: reason) }
    }
}

extension TCPConnection: LoopResource {
    func closeForShutdown() {
        close(with: .localClose(EventLoop.shutdownReason))
    }
}

extension Atomic where Value == Int {
    /// Adds `delta` and returns the new value.
    fileprivate func add(_ delta: Int) -> Int {
        wrappingAdd(delta, ordering: .relaxed).newValue
    }

    /// Stores `candidate` if it is larger (single writer: the loop thread).
    fileprivate func raise(to candidate: Int) {
        if candidate > load(ordering: .relaxed) { store(candidate, ordering: .relaxed) }
    }
}

/// A `uv_write_t` allocated together with the bytes it writes, so both live
/// exactly until the write callback frees them:
/// `[uv_write_t][byte count: Int][payload]`.
enum PendingWrite {
    /// Largest payload of one request (libuv buffer lengths are 32-bit).
    static let maxBytes = 1 << 30

    private static let countOffset = roundUp(MemoryLayout<uv_write_t>.size, to: MemoryLayout<Int>.alignment)
    private static let payloadOffset = countOffset + MemoryLayout<Int>.size
    private static let alignment = max(MemoryLayout<uv_write_t>.alignment, MemoryLayout<Int>.alignment)

    /// Copies `bytes` into a new request and starts writing it; on failure
    /// the request is freed and the libuv status returned.
    static func start(on stream: UnsafeMutablePointer<uv_stream_t>, copying bytes: UnsafeRawBufferPointer) -> Int32 {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: payloadOffset + bytes.count, alignment: alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: payloadOffset)
        raw.storeBytes(of: bytes.count, toByteOffset: countOffset, as: Int.self)
        let payload = raw + payloadOffset
        if let source = bytes.baseAddress { payload.copyMemory(from: source, byteCount: bytes.count) }
        let request = raw.bindMemory(to: uv_write_t.self, capacity: 1)
        var buffer = uv_buf_init(payload.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let status = uv_write(request, stream, &buffer, 1, tcpConnectionWriteCallback)
        if status != 0 { raw.deallocate() }
        return status
    }

    /// Frees a request and returns how many payload bytes it carried.
    static func finish(_ request: UnsafeMutablePointer<uv_write_t>) -> Int {
        let raw = UnsafeMutableRawPointer(request)
        let count = raw.load(fromByteOffset: countOffset, as: Int.self)
        raw.deallocate()
        return count
    }

    private static func roundUp(_ value: Int, to alignment: Int) -> Int {
        (value + alignment - 1) / alignment * alignment
    }
}

private func connection(of handle: UnsafeMutableRawPointer?) -> TCPConnection? {
    guard let data = handle?.assumingMemoryBound(to: uv_handle_t.self).pointee.data else { return nil }
    return Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue()
}

private func tcpConnectionAllocCallback(
    _ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggestedSize: Int, _ buffer: UnsafeMutablePointer<uv_buf_t>?
) {
    guard let buffer else { return }
    guard let loop = connection(of: handle)?.eventLoop else {
        buffer.pointee = uv_buf_init(nil, 0)  // libuv reports UV_ENOBUFS to the read callback
        return
    }
    buffer.pointee = uv_buf_init(
        loop.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(EventLoop.readBufferSize))
}

private func tcpConnectionReadCallback(
    _ stream: UnsafeMutablePointer<uv_stream_t>?, _ byteCount: Int, _ buffer: UnsafePointer<uv_buf_t>?
) {
    guard let connection = connection(of: stream) else { return }
    if byteCount > 0, let base = buffer?.pointee.base {
        connection.received(UnsafeRawBufferPointer(start: base, count: byteCount))
    } else if byteCount < 0 {
        connection.readFailed(Int32(truncatingIfNeeded: byteCount))
    }
}

private func tcpConnectionWriteCallback(_ request: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    guard let request else { return }
    let stream = request.pointee.handle
    let byteCount = PendingWrite.finish(request)
    connection(of: stream)?.writeCompleted(byteCount: byteCount, status: status)
}

private func tcpConnectionCloseCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    if let data = handle.pointee.data {
        let retained = Unmanaged<TCPConnection>.fromOpaque(data)
        retained.takeUnretainedValue().didClose()
        retained.release()
    }
    UV.free(handle)
}
