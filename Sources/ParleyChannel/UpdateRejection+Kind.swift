extension UpdateRejection {
    /// The case's name without its payload: a stable, low-cardinality label for metrics.
    public var kind: String {
        switch self {
        case .wrongChannel: "wrongChannel"
        case .versionMismatch: "versionMismatch"
        case .balanceNotConserved: "balanceNotConserved"
        case .balanceOverflow: "balanceOverflow"
        case .badSignature: "badSignature"
        case .missingSignature: "missingSignature"
        case .updateAfterFinal: "updateAfterFinal"
        case .appRuleViolated: "appRuleViolated"
        case .appDataTooLarge: "appDataTooLarge"
        case .insufficientFunds: "insufficientFunds"
        case .staleBase: "staleBase"
        case .notReady: "notReady"
        case .unexpectedMessage: "unexpectedMessage"
        case .versionsExhausted: "versionsExhausted"
        case .finalStateOutstanding: "finalStateOutstanding"
        case .versionAlreadySigned: "versionAlreadySigned"
        case .closeOnOwnTurn: "closeOnOwnTurn"
        case .moveMustGoOnChain: "moveMustGoOnChain"
        }
    }
}
