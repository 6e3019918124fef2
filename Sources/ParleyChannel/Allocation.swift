import ParleyWire

/// How the channel's funds are split between the two seats.
///
/// Balances are unsigned, so "negative" cannot be represented; a transfer that
/// would need one is refused as `insufficientFunds` before a state is built.
public struct Allocation: Hashable, Sendable, CustomStringConvertible {
    public var balances: [UInt64]

    public init(_ first: UInt64, _ second: UInt64) {
        balances = [first, second]
    }

    public subscript(participant: ParticipantIndex) -> UInt64 {
        get { balances[Int(participant.rawValue)] }
        set { balances[Int(participant.rawValue)] = newValue }
    }

    /// The sum of both balances, or `nil` when it does not fit in 64 bits.
    public var total: UInt64? {
        let (sum, overflow) = balances[0].addingReportingOverflow(balances[1])
        return overflow ? nil : sum
    }

    public var description: String { "[\(balances[0]), \(balances[1])]" }
}

extension Allocation: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(balances[0])
        writer.write(balances[1])
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let first = try reader.readUInt64("balance 0")
        let second = try reader.readUInt64("balance 1")
        self.init(first, second)
    }
}
