import ParleyWire

/// How the channel's funds are split between the two seats.
///
/// Balances are unsigned, so "negative" cannot be represented; a transfer that
/// would need one is refused as `insufficientFunds` before a state is built.
public struct Allocation: Hashable, Sendable, CustomStringConvertible {
    private var seats: PerSeat<UInt64>

    /// The balances in seat order; always exactly two. Change them through the seat
    /// subscript (a settable array would have to reject other lengths at run time).
    public var balances: [UInt64] { seats.array }

    public init(_ first: UInt64, _ second: UInt64) {
        seats = PerSeat(first, second)
    }

    public subscript(participant: ParticipantIndex) -> UInt64 {
        get { seats[participant] }
        set { seats[participant] = newValue }
    }

    /// The sum of both balances, or `nil` when it does not fit in 64 bits.
    public var total: UInt64? {
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
        let first = try reader.readUInt64("balance 0")
        let second = try reader.readUInt64("balance 1")
        self.init(first, second)
    }
}
