import Foundation
import ParleyLocks

/// Why a daemon (`parley devchain`, `parley node`) stops: a signal, the end of its input,
/// `quit`, or a ledger it can no longer write.
enum StopReason: Sendable {
    case signal(String)
    /// `--stop-on-eof` and standard input ended (devchain), or stdin ended (node).
    case inputClosed
    /// `quit` (node).
    case quit
    case fatal(String)
}

/// Written once, before the daemon waits; only keeps the sources alive.
nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []

/// Resolves once, on SIGINT/SIGTERM or a fatal error.
final class StopSignal: Sendable {
    private struct State {
        var reason: StopReason?
        var waiter: CheckedContinuation<StopReason, Never>?
    }

    private let state = Locked(State())

    func watchSignals() {
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in trigger(.signal(name)) }
            source.resume()
            sources.append(source)
        }
        // Kept for the life of the process: a released source stops delivering.
        signalSources = sources
    }

    /// Reads (and ignores) standard input on a thread of its own until it ends.
    func watchStandardInput() {
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

    func trigger(_ reason: StopReason) {
        let waiter = state.withLock { state -> CheckedContinuation<StopReason, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    func wait() async -> StopReason {
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
