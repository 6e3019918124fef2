extension EventLoop {
    /// Connects to `address`, retrying refused, timed-out and failed
    /// attempts with `retry`'s backoff (waits measured by this loop's timers).
    ///
    /// - Throws: `TCPError.retriesExhausted(attempts:last:)` after the last
    ///   attempt; `TCPError.loopShutDown` at once if the loop shuts down;
    ///   `CancellationError` if the task is cancelled between attempts.
    public func dial(
        to address: SocketAddress,
        timeout: Duration = TCPConnection.defaultConnectTimeout,
        retry: RetryPolicy = .default,
        watermarks: TCPConnection.Watermarks = .default
    ) async throws -> TCPConnection {
        let attempts = max(1, retry.maxAttempts)
        var lastError = TCPError.connectTimeout(address, after: timeout)
        for attempt in 1...attempts {
            try Task.checkCancellation()
            do {
                return try await connect(to: address, timeout: timeout, watermarks: watermarks)
            } catch let error as TCPError where error.isRetryable {
                lastError = error
            }
            if attempt < attempts {
                try await sleep(for: retry.delay(afterAttempt: attempt))
            }
        }
        throw TCPError.retriesExhausted(attempts: attempts, last: lastError)
    }
}
