import Metrics
import ParleyChannel
import ParleySettlement

/// What a node records (Docs/Metrics.md). Made once per node, with the metrics factory
/// bound when the node starts, so the update path only bumps existing objects. Labels are
/// roles, statuses and reason kinds: never a channel or a peer.
final class NodeMetrics: Sendable {
    /// Where a channel stands, for the `parley_channels` gauge.
    enum ChannelBucket: String, CaseIterable, Sendable {
        case funding, open, closing, closed
    }

    /// Who turned an update down: the `by` label of `parley_updates_rejected_total`.
    enum RejectedBy: String, Sendable {
        /// We refused the peer's proposal (our handler declined, or it broke a rule).
        case us
        /// The peer answered our proposal with a rejection.
        case peer
        /// Our own request was refused before anything was sent (e.g. too little balance).
        case local
    }

    private let committedAsProposer = Counter(label: "parley_updates_committed_total", dimensions: [("role", "proposer")])
    private let committedAsResponder = Counter(label: "parley_updates_committed_total", dimensions: [("role", "responder")])
    private let paymentsCommitted = Counter(label: "parley_payments_committed_total")
    private let channels: [ChannelBucket: Meter]
    let peerSessions = Meter(label: "parley_peer_sessions_up")
    private let rejected = LabeledCounters(label: "parley_updates_rejected_total", names: ["by", "reason"])

    init() {
        var channels: [ChannelBucket: Meter] = [:]
        for bucket in ChannelBucket.allCases {
            channels[bucket] = Meter(label: "parley_channels", dimensions: [("status", bucket.rawValue)])
        }
        self.channels = channels
    }

    /// An update committed; `payments` of our requests rode in it (0 for the peer's).
    func committed(mine: Bool, payments: Int) {
        (mine ? committedAsProposer : committedAsResponder).increment()
        if payments > 0 { paymentsCommitted.increment(by: payments) }
    }

    func rejected(by: RejectedBy, reason: String) {
        rejected.increment(by.rawValue, reason)
    }

    /// A channel moved from `old` (nil: it is new to this node) to `new`.
    func channelMoved(from old: ChannelBucket?, to new: ChannelBucket) {
        guard old != new else { return }
        if let old { channels[old]?.decrement() }
        channels[new]?.increment()
    }
}

extension ChannelStatus {
    /// This status's `parley_channels` bucket; an abandoned channel counts as closed.
    var metricsBucket: NodeMetrics.ChannelBucket {
        if isClosed { return .closed }
        if isClosing { return .closing }
        return isFunded ? .open : .funding
    }
}
