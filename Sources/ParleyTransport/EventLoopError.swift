/// Why an `EventLoop` could not start or would not take more work.
public enum EventLoopError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `shutdown()` has begun: the loop runs no new work.
    case shutDown
    /// libuv refused to initialise the loop or its wake-up handle.
    case initFailed(code: Int32, message: String)
    /// The operating system would not start the loop thread (`pthread_create` status).
    case threadStartFailed(errno: Int32)

    public var description: String {
        switch self {
        case .shutDown:
            return "the event loop has shut down and runs no new work"
        case let .initFailed(code, message):
            return "could not initialise the libuv loop: \(message) (\(code))"
        case let .threadStartFailed(errno):
            return "could not start the event loop thread (pthread_create returned \(errno))"
        }
    }
}
