import CLibUV

extension EventLoop {
    /// Opens a TCP connection to `address` with `TCP_NODELAY` set.
    ///
    /// One attempt; `dial(to:timeout:retry:watermarks:)` retries with backoff.
    /// - Throws: `TCPError.connectRefused`, `.connectTimeout` (nothing
    ///   answered within `timeout`), `.connectFailed`, or `.loopShutDown`.
    public func connect(
        to address: SocketAddress,
        timeout: Duration = TCPConnection.defaultConnectTimeout,
        watermarks: TCPConnection.Watermarks = .default
    ) async throws -> TCPConnection {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<TCPConnection, Error>) in
            let accepted = enqueue { [self] in
                TCPConnector.start(
                    on: self, to: address, timeout: timeout, watermarks: watermarks,
                    completion: { continuation.resume(with: $0.mapError { $0 as Error }) })
            }
            if !accepted { continuation.resume(throwing: TCPError.loopShutDown) }
        }
    }
}

/// One connect attempt: owns the handle (through its `data`) until it
/// either becomes a `TCPConnection` or is closed after a failure, and races
/// the connect request against a timeout timer. Loop-confined.
final class TCPConnector: LoopResource {
    private let loop: EventLoop
    private let address: SocketAddress
    private let timeout: Duration
    private let watermarks: TCPConnection.Watermarks
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private var completion: ((Result<TCPConnection, TCPError>) -> Void)?
    private var timer: LoopTimer?

    private init(
        loop: EventLoop, address: SocketAddress, timeout: Duration,
        watermarks: TCPConnection.Watermarks, handle: UnsafeMutablePointer<uv_tcp_t>,
        completion: @escaping (Result<TCPConnection, TCPError>) -> Void
    ) {
        self.loop = loop
        self.address = address
        self.timeout = timeout
        self.watermarks = watermarks
        self.handle = handle
        self.completion = completion
    }

    static func start(
        on loop: EventLoop, to address: SocketAddress, timeout: Duration,
        watermarks: TCPConnection.Watermarks,
        completion: @escaping (Result<TCPConnection, TCPError>) -> Void
    ) {
        guard !loop.isClosingHandles else { return completion(.failure(.loopShutDown)) }
        let handle = UV.allocate(uv_tcp_t.self)
        let status = uv_tcp_init(loop.uvLoop, handle)
        guard status == 0 else {
            UV.free(handle)
            return completion(.failure(.connectFailed(address, code: status, message: UV.message(status))))
        }
        // libuv remembers the option and applies it once the socket exists.
        uv_tcp_nodelay(handle, 1)
        let connector = TCPConnector(
            loop: loop, address: address, timeout: timeout, watermarks: watermarks,
            handle: handle, completion: completion)
        handle.pointee.data = Unmanaged.passRetained(connector).toOpaque()
        connector.connect()
    }

    private func connect() {
        let request = UV.allocate(uv_connect_t.self)
        let status = address.withSockAddr { uv_tcp_connect(request, handle, $0, tcpConnectorCallback) }
        guard status == 0 else {
            UV.free(request)
            return fail(with: status)
        }
        timer = LoopTimer.start(on: loop, after: timeout, fire: { [self] in
            finish(.failure(.connectTimeout(address, after: timeout)))
            closeHandle()
        })
    }

    /// The connect request finished (or was cancelled by our own close).
    fileprivate func connected(status: Int32) {
        guard completion != nil else { return }  // timed out or shut down: the handle is closing
        guard status == 0 else { return fail(with: status) }
        guard let local = SocketAddress.local(of: handle) else { return fail(with: UV.cancelled) }
        let connection = TCPConnection(
            loop: loop, handle: handle, localAddress: local,
            remoteAddress: SocketAddress.peer(of: handle) ?? address, watermarks: watermarks)
        finish(.success(connection))
        // The connection took over the handle's data; drop the connector's retain last.
        Unmanaged.passUnretained(self).release()
    }

    private func fail(with status: Int32) {
        let error: TCPError = status == UV.connectionRefused
            ? .connectRefused(address)
            : .connectFailed(address, code: status, message: UV.message(status))
        finish(.failure(error))
        closeHandle()
    }

    private func finish(_ result: Result<TCPConnection, TCPError>) {
        timer?.cancel()
        timer = nil
        let completion = self.completion
        self.completion = nil
        completion?(result)
    }

    private func closeHandle() {
        guard uv_is_closing(UV.handle(handle)) == 0 else { return }
        uv_close(UV.handle(handle), tcpConnectorCloseCallback)
    }

    func closeForShutdown() {
        finish(.failure(.loopShutDown))
        closeHandle()
    }
}

private func tcpConnectorCallback(_ request: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    guard let request else { return }
    let data = request.pointee.handle?.pointee.data
    UV.free(request)
    guard let data else { return }
    Unmanaged<TCPConnector>.fromOpaque(data).takeUnretainedValue().connected(status: status)
}

private func tcpConnectorCloseCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    if let data = handle.pointee.data {
        Unmanaged<TCPConnector>.fromOpaque(data).release()
    }
    UV.free(handle)
}
