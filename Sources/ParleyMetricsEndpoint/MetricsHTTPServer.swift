import ParleyLocks
import ParleyTransport

/// Serves `GET /metrics` over plain HTTP/1.1 on a libuv loop: one request per connection,
/// answered and closed. Anything else gets 400, 404 or 405; a client gets
/// `requestDeadline` to send its request and the connection is closed then, and at most
/// `maxConnections` are served at once (more are closed at once). The daemon that owns it
/// closes it after its own shutdown, so a last scrape sees the final counts.
public final class MetricsHTTPServer: Sendable {
    /// The address scrapers dial (the real port when asked for port 0).
    public let address: SocketAddress
    public static let requestDeadline: Duration = .seconds(5)
    public static let maxConnections = 32
    /// The longest request head (request line and headers) read; longer ones get 400.
    public static let maxRequestBytes = 8 << 10

    private let listener: TCPListener
    private let open = Locked(0)

    private init(listener: TCPListener) {
        self.listener = listener
        address = listener.localAddress
    }

    /// Listens on `address`; `body` renders the metrics for each scrape.
    public static func start(
        on address: SocketAddress, loop: EventLoop, body: @escaping @Sendable () -> [UInt8]
    ) async throws -> MetricsHTTPServer {
        let holder = Locked<MetricsHTTPServer?>(nil)
        let listener = try await loop.listen(on: address) { connection in
            guard let server = holder.withLock({ $0 }) else { return connection.close(reason: "starting") }
            server.accept(connection, body: body)
        }
        let server = MetricsHTTPServer(listener: listener)
        holder.withLock { $0 = server }
        return server
    }

    /// Stops accepting; exchanges under way finish (or meet their deadline).
    public func close() async {
        await listener.close()
    }

    private func accept(_ connection: TCPConnection, body: @escaping @Sendable () -> [UInt8]) {
        let admitted = open.withLock { count -> Bool in
            guard count < Self.maxConnections else { return false }
            count += 1
            return true
        }
        guard admitted else { return connection.close(reason: "too many metrics connections") }
        let exchange = HTTPExchange(connection: connection, body: body)
        let deadline = connection.eventLoop.schedule(after: Self.requestDeadline) {
            connection.close(reason: "no complete request within \(Self.requestDeadline)")
        }
        connection.setHandlers(
            onRead: { bytes in exchange.received(bytes) },
            onClose: { [self] _ in
                deadline.cancel()
                open.withLock { $0 -= 1 }
            })
    }
}
