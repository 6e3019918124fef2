import ParleyWire

/// How the channel's funds are split between the two seats.
///
/// Balances are unsigned, so "negative" cannot be represented; a transfer that
/// would need one is refused as `insufficientFunds` before a state is built.
public struct Allocation: Hashable, Sendable, CustomStringConvertible {
    // One field per seat rather than an array: every update builds and edits an
    // allocation, and an array would allocate each time.
    private var first: UInt64
    private var second: UInt64

    /// The balances in seat order; always exactly two. Change them through the seat
    /// subscript (a settable array would have to reject other lengths at run time).
    public var balances: [UInt64] { [first, second] }

    public init(_ first: UInt64, _ second: UInt64) {
        self.first = first
        self.second = second
    }

    public subscript(participant: ParticipantIndex) -> UInt64 {
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

    /// The sum of both balances, or `nil` when it does not fit in 64 bits.
    public var total: UInt64? {
        let (sum, overflow) = first.addingReportingOverflow(second)
        return overflow ? nil : sum
    }

    public var description: String { "[\(first), \(second)]" }
}

extension Allocation: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(first)
        writer.write(second)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let first = try reader.readUInt64("balance 0")
        let second = try reader.readUInt64("balance 1")
        self.init(first, second)
    }
}
