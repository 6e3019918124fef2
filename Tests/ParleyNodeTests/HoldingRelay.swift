import ParleyLocks
import ParleyTransport

/// A loopback TCP relay in front of a node: whoever dials `address` is connected through to
/// `target`, and bytes pass both ways unchanged (sessions stay end-to-end encrypted). While
/// `holdTargetBytes()` is in force the relay stops reading what the target sends — those
/// bytes wait in the kernel's buffers — so a test can let the chain move on before a
/// message from the target arrives. Real sockets on its own event loop.
final class HoldingRelay: Sendable {
    let address: SocketAddress
    private let loop: EventLoop
    private let listener: TCPListener
    private let state: Locked<RelayState>

    private struct RelayState: Sendable {
        var holding = false
        /// The relay's connections to the target, which it reads the target's bytes from.
        var upstreams: [TCPConnection] = []
        var all: [TCPConnection] = []
    }

    init(to target: SocketAddress) async throws {
        let loop = try EventLoop(name: "relay")
        let state = Locked(RelayState())
        do {
            listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { client in
                Task {
                    guard let upstream = try? await loop.connect(to: target, timeout: .seconds(5)) else {
                        return client.close(reason: "relay could not reach its target")
                    }
                    let holding = state.withLock { state in
                        state.upstreams.append(upstream)
                        state.all += [client, upstream]
                        return state.holding
                    }
                    // Unread until here: the client's bytes wait until the upstream is up.
                    client.setHandlers(
                        onRead: { upstream.send($0) { _ in } }, onClose: { _ in upstream.close(reason: "relay: client left") })
                    upstream.setHandlers(
                        onRead: { client.send($0) { _ in } }, onClose: { _ in client.close(reason: "relay: target left") })
                    if holding { upstream.pauseReading() }
                }
            }
        } catch {
            loop.shutdown()
            throw error
        }
        address = listener.localAddress
        self.loop = loop
        self.state = state
    }

    /// Stops passing on what the target sends, from now on.
    func holdTargetBytes() {
        for upstream in state.withLock({ $0.holding = true; return $0.upstreams }) { upstream.pauseReading() }
    }

    /// Passes on what the target sent while held, and everything after it.
    func releaseTargetBytes() {
        for upstream in state.withLock({ $0.holding = false; return $0.upstreams }) { upstream.resumeReading() }
    }

    /// Drops every relayed connection (both ends see the link go down).
    func dropConnections() {
        for connection in state.withLock({ $0.all }) { connection.close(reason: "relay dropped the link") }
    }

    func shutDown() async {
        await listener.close()
        dropConnections()
        loop.shutdown()
    }
}
