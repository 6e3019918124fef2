/// Thrown by `withDeadline` when its limit passes first.
public struct DeadlinePassed: Error, Sendable {
    public init() {}
}

/// Runs `body`, or throws `DeadlinePassed` once `limit` has passed, whichever comes first.
/// Cancelling the caller throws `CancellationError` at once.
///
/// The caller never waits for `body` past the limit: `body` is left to end on its own, and
/// is not cancelled. A task group would wait for it. Used where the work cannot be cut
/// short safely or at all:
/// - URLSession on Linux does not always give up a request to a peer that accepted the
///   connection and went silent (a frozen endpoint held a test for half an hour), and
///   cancelling an async request traps in FoundationNetworking when it races the
///   request's own end ("a task that in not in the registry"); the JSON-RPC client.
/// - A `close` whose peer does not answer keeps going after `parley node` answers
///   the command with a hint; a countersignature that comes later still closes.
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = FirstOutcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            outcome.install(continuation)
            Task {
                do { outcome.finish(.success(try await body())) } catch { outcome.finish(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled { outcome.finish(.failure(DeadlinePassed())) }
            }
            outcome.onFinish { timer.cancel() }
        }
    } onCancel: {
        outcome.finish(.failure(CancellationError()))
    }
}

/// Resumes a continuation with the first of several outcomes; later ones are dropped.
private final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var done = false
        var cleanup: [@Sendable () -> Void] = []
    }
    private let state = Locked(State())

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { state in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func onFinish(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state in
            if state.done { return true }
            state.cleanup.append(action)
            return false
        }
        if runNow { action() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, cleanup): (CheckedContinuation<T, any Error>?, [@Sendable () -> Void]) = state.withLock { state in
            guard !state.done else { return (nil, []) }
            state.done = true
            let cleanup = state.cleanup
            state.cleanup = []
            if let continuation = state.continuation {
                state.continuation = nil
                return (continuation, cleanup)
            }
            state.early = result
            return (nil, cleanup)
        }
        continuation?.resume(with: result)
        cleanup.forEach { $0() }
    }
}
