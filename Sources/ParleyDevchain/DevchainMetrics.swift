import Metrics
import ParleySettlement

/// What a devchain daemon records (Docs/Metrics.md). Made once per server; labels are
/// transaction kinds and refusal kinds, never an account or a channel.
final class DevchainMetrics: Sendable {
    private let applied: [ChainCallMetrics.Call: Counter]
    let clients = Meter(label: "parley_devchain_clients_connected")
    /// One ledger record's write and fsync.
    let ledgerFsync = Metrics.Timer(label: "parley_devchain_ledger_fsync_seconds")
    private let refused = LabeledCounters(label: "parley_devchain_transactions_refused_total", names: ["error"])

    init() {
        var applied: [ChainCallMetrics.Call: Counter] = [:]
        for call in [ChainCallMetrics.Call.mint, .deposit, .reclaim, .register, .progress, .conclude, .withdraw] {
            applied[call] = Counter(label: "parley_devchain_transactions_applied_total", dimensions: [("kind", call.rawValue)])
        }
        self.applied = applied
    }

    /// Counts `tx` by how the daemon answered it.
    func record(_ tx: ChainTransaction, _ result: DevchainResult) {
        switch result {
        case .ok: applied[tx.metricsCall]?.increment()
        case let .refused(error): refused.increment(error.kind)
        case let .failed(refusal): refused.increment(refusal.kind)
        }
    }
}
