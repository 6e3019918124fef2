import Metrics

/// A chain adapter's calls, as metrics (Docs/Metrics.md): how long each kind of call took
/// and how many failed. Made once per adapter, so a call costs two clock reads and no
/// lookups; labels name the call, never a channel.
public final class ChainCallMetrics: Sendable {
    /// What a call asked the chain; the `call` label.
    public enum Call: String, Sendable, CaseIterable {
        case now, domain, channel, balance, info, advance
        case mint, deposit, reclaim, register, progress, conclude, withdraw
    }

    private struct Series: Sendable {
        let latency: Metrics.Timer
        let refused: Counter
        let transport: Counter
    }

    private let series: [Call: Series]

    /// Metrics made with the factory bound now (`MetricsSystem.factory`, or a task-local one).
    public init() {
        var series: [Call: Series] = [:]
        for call in Call.allCases {
            let label = [("call", call.rawValue)]
            series[call] = Series(
                latency: Metrics.Timer(label: "parley_chain_call_duration_seconds", dimensions: label),
                refused: Counter(label: "parley_chain_call_failures_total", dimensions: label + [("error", "refused")]),
                transport: Counter(label: "parley_chain_call_failures_total", dimensions: label + [("error", "transport")]))
        }
        self.series = series
    }

    /// How a call ended: the `error` label of a failure.
    public enum Outcome: Sendable {
        case ok
        /// The chain answered no (a rule, a permission).
        case refused
        /// The chain was not reached, or did not answer in time.
        case transport
    }

    /// Runs `body` as one `call`, timing it; a thrown `.transport` counts as unreachable,
    /// any other error as refused.
    public func measure<T>(
        _ call: Call, _ body: () async throws(SettlementError) -> T
    ) async throws(SettlementError) -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            record(call, since: start, .ok)
            return result
        } catch {
            if case .transport = error { record(call, since: start, .transport) } else { record(call, since: start, .refused) }
            throw error
        }
    }

    /// Records one `call` that started at `start` and ended as `outcome`.
    public func record(_ call: Call, since start: ContinuousClock.Instant, _ outcome: Outcome) {
        guard let series = series[call] else { return }
        series.latency.record(duration: ContinuousClock.now - start)
        switch outcome {
        case .ok: break
        case .refused: series.refused.increment()
        case .transport: series.transport.increment()
        }
    }
}
