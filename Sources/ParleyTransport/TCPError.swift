/// Why a TCP connection ended. Reported once to the connection's `onClose` handler.
public enum TCPCloseReason: Equatable, Sendable, CustomStringConvertible {
    /// The peer closed its side (end of stream).
    case peerClosed
    /// The socket failed; `code` is the libuv (negated errno) code.
    case error(code: Int32, message: String)
    /// This process closed it, for the stated reason.
    case localClose(String)

    public var description: String {
        switch self {
        case .peerClosed:
            return "the peer closed the connection"
        case let .error(code, message):
            return "socket error: \(message) (\(UV.name(code)))"
        case let .localClose(reason):
            return "closed locally: \(reason)"
        }
    }

    init(errorCode code: Int32) {
        self = code == UV.endOfFile ? .peerClosed : .error(code: code, message: UV.message(code))
    }
}

/// Why a TCP operation failed.
public enum TCPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing listens at the address (ECONNREFUSED).
    case connectRefused(SocketAddress)
    /// The connection was not established within the connect timeout.
    case connectTimeout(SocketAddress, after: Duration)
    /// Any other connect failure (unreachable network, no permission, …).
    case connectFailed(SocketAddress, code: Int32, message: String)
    /// The address could not be bound or listened on (in use, no permission, …).
    case listenFailed(SocketAddress, code: Int32, message: String)
    /// The connection is closed; bytes not yet accepted by `send` were not sent.
    case connectionClosed(TCPCloseReason)
    /// The event loop has shut down.
    case loopShutDown
    /// Every attempt of `EventLoop.dial(to:timeout:retry:)` failed; `last` is the final failure.
    indirect case retriesExhausted(attempts: Int, last: TCPError)

    /// True for failures a later attempt may not repeat (refused, timeout, transient socket errors).
    public var isRetryable: Bool {
        switch self {
        case .connectRefused, .connectTimeout, .connectFailed: return true
        case .listenFailed, .connectionClosed, .loopShutDown, .retriesExhausted: return false
        }
    }

    public var description: String {
        switch self {
        case let .connectRefused(address):
            return "connection to \(address) refused: nothing listens there"
        case let .connectTimeout(address, after):
            return "connection to \(address) not established within \(after)"
        case let .connectFailed(address, code, message):
            return "could not connect to \(address): \(message) (\(UV.name(code)))"
        case let .listenFailed(address, code, message):
            return "could not listen on \(address): \(message) (\(UV.name(code)))"
        case let .connectionClosed(reason):
            return "connection closed (\(reason))"
        case .loopShutDown:
            return "the event loop has shut down"
        case let .retriesExhausted(attempts, last):
            return "gave up after \(attempts) attempt(s); last failure: \(last)"
        }
    }
}
