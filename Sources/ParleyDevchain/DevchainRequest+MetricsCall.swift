import ParleySettlement

extension DevchainRequest.Operation {
    /// The `call` label of this request in the chain-call metrics; nil for subscriptions,
    /// which last as long as the session and have no latency.
    var metricsCall: ChainCallMetrics.Call? {
        switch self {
        case let .submit(tx): tx.metricsCall
        case .now: .now
        case .channel: .channel
        case .balance: .balance
        case .advance: .advance
        case .info: .info
        case .subscribe, .unsubscribe: nil
        }
    }
}
