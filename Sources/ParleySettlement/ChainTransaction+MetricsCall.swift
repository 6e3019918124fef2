extension ChainTransaction {
    /// This transaction's `call` label in the chain-call metrics, and its `kind` label in the
    /// devchain's.
    public var metricsCall: ChainCallMetrics.Call {
        switch self {
        case .mint: .mint
        case .deposit: .deposit
        case .reclaim: .reclaim
        case .register: .register
        case .progress: .progress
        case .conclude: .conclude
        case .withdraw: .withdraw
        }
    }
}
