import CLibUV

extension EventLoop {
    /// Listens for TCP connections on `address` (port 0: the OS picks one;
    /// read it back from `localAddress`).
    ///
    /// `onConnection` runs on the loop thread for each accepted connection,
    /// which already has `TCP_NODELAY` set. It should call `setHandlers` (or
    /// `close`); until then the connection does not read.
    /// - Throws: `TCPError.listenFailed` (address in use, no permission, …)
    ///   or `.loopShutDown`.
    public func listen(
        on address: SocketAddress,
        backlog: Int32 = TCPListener.defaultBacklog,
        watermarks: TCPConnection.Watermarks = .default,
        onConnection: @escaping @Sendable (TCPConnection) -> Void
    ) async throws -> TCPListener {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<TCPListener, Error>) in
            let accepted = enqueue { [self] in
                continuation.resume(with: Result {
                    try TCPListener.open(
                        on: self, address: address, backlog: backlog,
                        watermarks: watermarks, onConnection: onConnection)
                })
            }
            if !accepted { continuation.resume(throwing: TCPError.loopShutDown) }
        }
    }
}

/// A listening TCP socket on an `EventLoop`.
///
/// Loop-confined state; `close()` is safe from any thread. The handle's
/// `data` holds one retain of the listener until its close callback, so a
/// listener keeps accepting until `close()` or loop shutdown, even when the
/// caller drops its reference. Closing the listener does not close the
/// connections it accepted.
public final class TCPListener: @unchecked Sendable {
    /// Pending-connection queue length passed to `listen(2)` (libuv's customary 511).
    public static let defaultBacklog: Int32 = 511

    public let eventLoop: EventLoop
    /// The bound address, with the port the OS chose if port 0 was asked for.
    public let localAddress: SocketAddress

    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private let watermarks: TCPConnection.Watermarks
    private let onConnection: @Sendable (TCPConnection) -> Void

    // Loop-confined.
    private var isOpen = true
    private var isClosed = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    /// Connections the kernel offered that could not be accepted (fd limit, reset before accept).
    private(set) var acceptFailures = 0

    private init(
        loop: EventLoop, handle: UnsafeMutablePointer<uv_tcp_t>, localAddress: SocketAddress,
        watermarks: TCPConnection.Watermarks, onConnection: @escaping @Sendable (TCPConnection) -> Void
    ) {
        eventLoop = loop
        self.handle = handle
        self.localAddress = localAddress
        self.watermarks = watermarks
        self.onConnection = onConnection
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Binds, listens and wraps the handle; on the loop thread.
    fileprivate static func open(
        on loop: EventLoop, address: SocketAddress, backlog: Int32,
        watermarks: TCPConnection.Watermarks, onConnection: @escaping @Sendable (TCPConnection) -> Void
    ) throws(TCPError) -> TCPListener {
        guard !loop.isClosingHandles else { throw .loopShutDown }
        let handle = UV.allocate(uv_tcp_t.self)
        var status = uv_tcp_init(loop.uvLoop, handle)
        guard status == 0 else {
            UV.free(handle)
            throw .listenFailed(address, code: status, message: UV.message(status))
        }
        status = address.withSockAddr { uv_tcp_bind(handle, $0, 0) }
        // libuv reports some bind errors (EADDRINUSE) only from uv_listen.
        // No connection callback can run before this function returns, so
        // `data` may be set after listening.
        if status == 0 { status = uv_listen(UV.stream(handle), backlog, tcpListenerConnectionCallback) }
        let local = SocketAddress.local(of: handle)
        guard status == 0, let local else {
            uv_close(UV.handle(handle), uvFreeHandleOnClose)
            let code = status == 0 ? UV.cancelled : status
            throw .listenFailed(address, code: code, message: UV.message(code))
        }
        return TCPListener(
            loop: loop, handle: handle, localAddress: local,
            watermarks: watermarks, onConnection: onConnection)
    }

    /// Stops listening and returns once the socket is closed. Idempotent.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            eventLoop.runOnLoop({ [self] in
                if isClosed { return continuation.resume() }
                closeWaiters.append(continuation)
                closeHandle()
            }, orElse: { continuation.resume() })
        }
    }

    fileprivate func acceptConnection(status: Int32) {
        guard isOpen else { return }
        guard status == 0 else {
            acceptFailures += 1
            return
        }
        let client = UV.allocate(uv_tcp_t.self)
        guard uv_tcp_init(eventLoop.uvLoop, client) == 0 else {
            UV.free(client)
            acceptFailures += 1
            return
        }
        guard uv_accept(UV.stream(handle), UV.stream(client)) == 0,
              uv_tcp_nodelay(client, 1) == 0,
              let local = SocketAddress.local(of: client),
              let remote = SocketAddress.peer(of: client)
        else {
            // Already reset by the peer, or not a usable socket.
            uv_close(UV.handle(client), uvFreeHandleOnClose)
            acceptFailures += 1
            return
        }
        let connection = TCPConnection(
            loop: eventLoop, handle: client, localAddress: local, remoteAddress: remote,
            watermarks: watermarks)
        onConnection(connection)
    }

    private func closeHandle() {
        guard isOpen else { return }
        isOpen = false
        uv_close(UV.handle(handle), tcpListenerCloseCallback)
    }

    fileprivate func didClose() {
        isClosed = true
        let waiters = closeWaiters
        closeWaiters = []
        for waiter in waiters { waiter.resume() }
    }
}

extension TCPListener: LoopResource {
    func closeForShutdown() {
        closeHandle()
    }
}

private func tcpListenerConnectionCallback(_ server: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    guard let data = server?.pointee.data else { return }
    Unmanaged<TCPListener>.fromOpaque(data).takeUnretainedValue().acceptConnection(status: status)
}

private func tcpListenerCloseCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    if let data = handle.pointee.data {
        let retained = Unmanaged<TCPListener>.fromOpaque(data)
        retained.takeUnretainedValue().didClose()
        retained.release()
    }
    UV.free(handle)
}
