/// One of the two seats in a channel. The proposer of the channel sits first.
///
/// Balances, signatures and the tie-break for simultaneous proposals are all
/// ordered by this index, so both peers agree on it without negotiation.
public enum ParticipantIndex: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case first = 0
    case second = 1

    /// The other participant.
    public var peer: ParticipantIndex { self == .first ? .second : .first }

    public var description: String { self == .first ? "participant 0" : "participant 1" }
}

/// One value per seat, stored inline. `Allocation` and `SignedState` keep their balances
/// and signatures this way rather than in arrays: both are built, copied and edited on
/// every update, and an array would be a heap allocation each time.
struct PerSeat<Value> {
    var first: Value
    var second: Value

    init(_ first: Value, _ second: Value) {
        self.first = first
        self.second = second
    }

    subscript(participant: ParticipantIndex) -> Value {
        get {
            switch participant {
            case .first: first
            case .second: second
            }
        }
        set {
            switch participant {
            case .first: first = newValue
            case .second: second = newValue
            }
        }
    }

    /// In seat order.
    var array: [Value] { [first, second] }
}

extension PerSeat: Equatable where Value: Equatable {}
extension PerSeat: Hashable where Value: Hashable {}
extension PerSeat: Sendable where Value: Sendable {}
