import ParleyWire

/// How the channel's funds are split between the two seats.
///
/// Balances are unsigned, so "negative" cannot be represented; a transfer that
/// would need one is refused as `insufficientFunds` before a state is built.
public struct Allocation: Hashable, Sendable, CustomStringConvertible {
    private var seats: PerSeat<Amount>

    /// The balances in seat order; always exactly two. Change them through the seat
    /// subscript (a settable array would have to reject other lengths at run time).
    public var balances: [Amount] { seats.array }

    public init(_ first: Amount, _ second: Amount) {
        seats = PerSeat(first, second)
    }

    public subscript(participant: ParticipantIndex) -> Amount {
        get { seats[participant] }
        set { seats[participant] = newValue }
    }

    /// The sum of both balances, or `nil` when it does not fit in an ``Amount``.
    public var total: Amount? {
        let (sum, overflow) = seats.first.addingReportingOverflow(seats.second)
        return overflow ? nil : sum
    }

    public var description: String { "[\(seats.first), \(seats.second)]" }
}

extension Allocation: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(seats.first)
        writer.write(seats.second)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let first = try reader.readAmount("balance 0")
        let second = try reader.readAmount("balance 1")
        self.init(first, second)
    }
}
