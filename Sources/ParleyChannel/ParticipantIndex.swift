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
