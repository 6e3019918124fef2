import Metrics

/// Handshakes that never became a session, by our role and why (Docs/Metrics.md). Made
/// once per endpoint; the labels are fixed small sets.
struct HandshakeMetrics: Sendable {
    enum Role: String, CaseIterable, Sendable {
        case dialer, listener
    }

    /// Why, in a word: the `reason` label.
    enum Reason: String, CaseIterable, Sendable {
        /// The peer broke the handshake protocol, proved the wrong key, or was not accepted.
        case failed
        case timeout
        /// The listener's own bounds (pending handshakes, rate) turned it away.
        case refused
        /// The connection dropped or the loop stopped.
        case transport
    }

    private struct Key: Hashable {
        let role: Role
        let reason: Reason
    }

    private let counters: [Key: Counter]

    init() {
        var counters: [Key: Counter] = [:]
        for role in Role.allCases {
            for reason in Reason.allCases {
                counters[Key(role: role, reason: reason)] = Counter(
                    label: "parley_session_handshakes_failed_total",
                    dimensions: [("role", role.rawValue), ("reason", reason.rawValue)])
            }
        }
        self.counters = counters
    }

    func failed(_ role: Role, _ reason: SessionCloseReason) {
        counters[Key(role: role, reason: Self.reason(reason))]?.increment()
    }

    static func reason(_ close: SessionCloseReason) -> Reason {
        if close.isListenerRefusal { return .refused }
        switch close {
        case .handshakeTimeout: return .timeout
        case .handshakeFailed: return .failed
        default: return .transport
        }
    }
}
