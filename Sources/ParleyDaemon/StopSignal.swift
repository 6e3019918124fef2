import Foundation
import ParleyLocks

/// Why a daemon (`parley devchain`, `parley node`, the game server) stops: SIGTERM/SIGINT
/// (graceful shutdown of its service group), the end of its input, `quit`, or a ledger it
/// can no longer write.
public enum StopReason: Sendable {
    case signal
    /// `--stop-on-eof` and standard input ended (devchain), or stdin ended (node).
    case inputClosed
    /// `quit` (node).
    case quit
    case fatal(String)
}

/// Resolves once, with the first reason to stop.
public final class StopSignal: Sendable {
    private struct State {
        var reason: StopReason?
        var waiter: CheckedContinuation<StopReason, Never>?
    }

    private let state = Locked(State())

    public init() {}

    /// Reads (and ignores) standard input on a thread of its own until it ends.
    public func watchStandardInput() {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 512)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count > 0 { continue }
                if count < 0, errno == EINTR { continue }
                break
            }
            trigger(.inputClosed)
        }
        thread.name = "devchain-stdin"
        thread.start()
    }

    public func trigger(_ reason: StopReason) {
        let waiter = state.withLock { state -> CheckedContinuation<StopReason, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    public func wait() async -> StopReason {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> StopReason? in
                if let reason = state.reason { return reason }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
