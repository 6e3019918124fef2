extension SettlementError {
    /// The case's name without its payload: a stable, low-cardinality label for metrics.
    public var kind: String {
        switch self {
        case .unknownChannel: "unknownChannel"
        case .notAParticipant: "notAParticipant"
        case .badSignature: "badSignature"
        case .missingSignature: "missingSignature"
        case .wrongChannel: "wrongChannel"
        case .staleVersion: "staleVersion"
        case .notNextVersion: "notNextVersion"
        case .windowClosed: "windowClosed"
        case .windowStillOpen: "windowStillOpen"
        case .nothingRegistered: "nothingRegistered"
        case .alreadyConcluded: "alreadyConcluded"
        case .notConcluded: "notConcluded"
        case .alreadyWithdrawn: "alreadyWithdrawn"
        case .nothingToWithdraw: "nothingToWithdraw"
        case .underfunded: "underfunded"
        case .overDeposit: "overDeposit"
        case .openingMismatch: "openingMismatch"
        case .alreadyFunded: "alreadyFunded"
        case .depositsClosed: "depositsClosed"
        case .nothingToReclaim: "nothingToReclaim"
        case .zeroAmount: "zeroAmount"
        case .insufficientBalance: "insufficientBalance"
        case .notYourTurn: "notYourTurn"
        case .progressNotAllowed: "progressNotAllowed"
        case .invalidMove: "invalidMove"
        case .unknownApp: "unknownApp"
        case .balanceNotConserved: "balanceNotConserved"
        case .balanceOverflow: "balanceOverflow"
        case .transport: "transport"
        case .wrongDomain: "wrongDomain"
        case .notPermitted: "notPermitted"
        }
    }
}
