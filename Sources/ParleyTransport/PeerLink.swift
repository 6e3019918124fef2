import ParleyCrypto
import ParleyLocks

/// Keeps a session to one known peer: dials it, and whenever the session
/// ends, dials again with exponential backoff and jitter, until stopped.
///
/// The side that first dialed owns the link; the listening side simply
/// accepts the new session. Each `.connected` session is fresh (new
/// ephemeral keys, counters from zero): the channel layer runs its
/// reestablish step on top of it.
public final class PeerLink: @unchecked Sendable {
    /// What the link reports, in order, on an arbitrary task.
    public enum Event: Sendable {
        case connected(Session)
        /// The session ended; a redial follows after `retryIn` unless the link was stopped.
        case disconnected(SessionCloseReason, retryIn: Duration)
        /// A dial or handshake failed (a `TCPError` or `SessionError`, e.g. the peer proved
        /// another key); the next attempt follows after `retryIn`.
        case attemptFailed(any Error, retryIn: Duration)
    }

    public let peer: PublicKey
    public let address: SocketAddress
    private let endpoint: SessionEndpoint
    private let retry: RetryPolicy
    private let onEvent: @Sendable (Event) -> Void
    private let lock = PThreadLock()
    private var task: Task<Void, Never>?
    private var current: Session?

    /// `retry` paces redials: attempt n waits `retry.delay(afterAttempt: n)`; `maxAttempts` is ignored (a link never gives up).
    public init(
        endpoint: SessionEndpoint, peer: PublicKey, address: SocketAddress, retry: RetryPolicy = .default,
        onEvent: @escaping @Sendable (Event) -> Void
    ) {
        self.endpoint = endpoint
        self.peer = peer
        self.address = address
        self.retry = retry
        self.onEvent = onEvent
    }

    /// Starts dialing. Calling it again while running does nothing.
    public func start() {
        lock.withLock {
            guard task == nil else { return }
            task = Task { [self] in await run() }
        }
    }

    /// Stops redialing and closes the current session, if any.
    public func stop() async {
        let (running, session) = lock.withLock { () -> (Task<Void, Never>?, Session?) in
            defer {
                task = nil
                current = nil
            }
            return (task, current)
        }
        running?.cancel()
        session?.close(reason: "link stopped")
        await running?.value
    }

    private func run() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let session = try await endpoint.connect(to: address, expecting: peer)
                guard keep(session) else {
                    session.close(reason: "link stopped")
                    return
                }
                failures = 0
                onEvent(.connected(session))
                let reason = await session.waitUntilClosed()
                lock.withLock { current = nil }
                let wait = retry.delay(afterAttempt: 1)
                onEvent(.disconnected(reason, retryIn: wait))
                try await Task.sleep(for: wait)
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                let wait = retry.delay(afterAttempt: min(failures, 32))
                onEvent(.attemptFailed(error, retryIn: wait))
                do { try await Task.sleep(for: wait) } catch { return }
            }
        }
    }

    /// Records the new session unless the link was stopped meanwhile.
    private func keep(_ session: Session) -> Bool {
        lock.withLock {
            guard task != nil, !Task.isCancelled else { return false }
            current = session
            return true
        }
    }
}
