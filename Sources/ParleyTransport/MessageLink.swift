import ParleyCrypto

/// An ordered, authenticated, message-oriented connection to one peer: all a node needs
/// from its transport.
///
/// The libuv ``Session`` is the production link. The simulator (`ParleySim`) has an
/// in-memory one with seeded delay, loss, duplication, reordering and partitions, so the
/// same node code runs over both (Docs/Architecture.md, "Seams").
public protocol MessageLink: AnyObject, Sendable {
    /// The peer's identity key, proven when the link was made.
    var peer: PublicKey { get }
    /// Where the peer is, for logs and events.
    var remoteDescription: String { get }
    /// Queues `message` for the peer. Returns at once while the link's send queue is below
    /// its high-water mark, and waits above it (backpressure: a peer that stops reading
    /// stops the sender). Throws once the link is closed.
    func send(_ message: [UInt8]) async throws
    /// Closes the link; the peer learns `reason` where the link can carry it. Idempotent.
    func close(reason: String)
    /// Hands every message from the peer to `handler`, in order, until the link closes,
    /// and returns why it closed. `handler` may run on a transport thread: it must be quick
    /// and never wait. Call once per link.
    func run(delivering handler: @escaping @Sendable ([UInt8]) -> Void) async -> SessionCloseReason
}

/// What a kept link reports (``LinkNetwork/keepLink(to:at:retry:onEvent:)``).
public enum LinkDialEvent: Sendable {
    case connected(any MessageLink)
    /// The link ended; a redial follows after `retryIn` unless it was stopped.
    case disconnected(SessionCloseReason, retryIn: Duration)
    /// A dial or handshake failed; the next attempt follows after `retryIn`.
    case attemptFailed(any Error, retryIn: Duration)
}

/// Accepting peers, until closed.
public protocol LinkListener: Sendable {
    /// Where peers reach us (the real port when port 0 was asked for).
    var localAddress: SocketAddress { get }
    func close() async
}

/// A link to one peer that is redialled whenever it ends, until stopped.
public protocol LinkKeeper: Sendable {
    /// Starts dialling; calling it again while running does nothing.
    func start()
    /// Stops redialling and closes the current link, if any.
    func stop() async
}

/// How a node reaches its peers: accept them, and keep links to the ones it dials.
public protocol LinkNetwork: Sendable {
    /// Accepts peers on `address`. `accept` vets each peer's proven key; every link that
    /// passes goes to `onLink`. Failures of single handshakes go to `onRefused` with the
    /// remote address and why.
    func listen(
        on address: SocketAddress, accept: @escaping @Sendable (PublicKey) -> Bool,
        onRefused: @escaping @Sendable (String, SessionCloseReason) -> Void,
        onLink: @escaping @Sendable (any MessageLink) -> Void
    ) async throws -> any LinkListener
    /// A link to `peer` at `address`, redialled with `retry`'s backoff whenever it ends
    /// (`maxAttempts` ignored), reporting to `onEvent`. Not started yet.
    func keepLink(
        to peer: PublicKey, at address: SocketAddress, retry: RetryPolicy,
        onEvent: @escaping @Sendable (LinkDialEvent) -> Void
    ) -> any LinkKeeper
    /// Stops what the network runs on the node's behalf (its event loop, if it owns one).
    /// The node calls it last, after closing its listener, keepers and links.
    func shutDown() async
}

// MARK: - The libuv implementation

extension Session: MessageLink {
    public var remoteDescription: String { remoteAddress.description }

    public func run(delivering handler: @escaping @Sendable ([UInt8]) -> Void) async -> SessionCloseReason {
        // Messages go from the loop thread straight to `handler`; the events carry only
        // silence notices and the end.
        await deliverMessages(to: handler)
        for await event in events {
            switch event {
            case let .message(bytes): handler(bytes)
            case .peerSilent: continue
            case let .closed(reason): return reason
            }
        }
        return .transport(.localClose(EventLoop.shutdownReason))
    }
}

extension TCPListener: LinkListener {}

extension PeerLink: LinkKeeper {}

/// Peers over encrypted libuv TCP sessions (``SessionEndpoint``), on one event loop.
public final class TCPLinkNetwork: LinkNetwork {
    public let endpoint: SessionEndpoint
    private let ownsLoop: Bool

    /// Sessions as `identity` on `loop`; without a loop, the network runs (and at
    /// ``shutDown()`` stops) one of its own.
    public init(identity: SigningKey, config: SessionConfig = SessionConfig(), loop: EventLoop? = nil) throws {
        if let loop {
            endpoint = SessionEndpoint(identity: identity, loop: loop, config: config)
            ownsLoop = false
        } else {
            endpoint = SessionEndpoint(identity: identity, loop: try EventLoop(name: "parley-node"), config: config)
            ownsLoop = true
        }
    }

    public func listen(
        on address: SocketAddress, accept: @escaping @Sendable (PublicKey) -> Bool,
        onRefused: @escaping @Sendable (String, SessionCloseReason) -> Void,
        onLink: @escaping @Sendable (any MessageLink) -> Void
    ) async throws -> any LinkListener {
        try await endpoint.listen(
            on: address, acceptPeer: accept, onHandshakeFailure: { onRefused($0.description, $1) },
            onSession: { onLink($0) })
    }

    public func keepLink(
        to peer: PublicKey, at address: SocketAddress, retry: RetryPolicy,
        onEvent: @escaping @Sendable (LinkDialEvent) -> Void
    ) -> any LinkKeeper {
        PeerLink(endpoint: endpoint, peer: peer, address: address, retry: retry) { event in
            switch event {
            case let .connected(session): onEvent(.connected(session))
            case let .disconnected(reason, retryIn): onEvent(.disconnected(reason, retryIn: retryIn))
            case let .attemptFailed(error, retryIn): onEvent(.attemptFailed(error, retryIn: retryIn))
            }
        }
    }

    public func shutDown() async {
        if ownsLoop { endpoint.loop.shutdown() }
    }
}
