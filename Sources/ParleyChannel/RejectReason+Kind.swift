extension RejectReason {
    /// The case's name without its payload: a stable, low-cardinality label for metrics.
    public var kind: String {
        switch self {
        case .concurrentProposal: "concurrentProposal"
        case .declined: "declined"
        case .invalid: "invalid"
        case .channelFinal: "channelFinal"
        case .notReady: "notReady"
        }
    }
}
