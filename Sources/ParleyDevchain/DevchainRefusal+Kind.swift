extension DevchainRefusal {
    /// The case's name without its payload: a stable, low-cardinality label for metrics.
    public var kind: String {
        switch self {
        case .clockNotManual: "clockNotManual"
        case .badRequest: "badRequest"
        case .tooManySubscriptions: "tooManySubscriptions"
        case .storageFailed: "storageFailed"
        case .faucetNotAllowed: "faucetNotAllowed"
        case .timeTravelNotAllowed: "timeTravelNotAllowed"
        }
    }
}
