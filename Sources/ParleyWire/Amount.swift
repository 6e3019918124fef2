/// An amount of a chain's asset in its smallest unit (wei on Ethereum), for every backend.
///
/// 128 bits: about 3.4 × 10³⁸, so 3.4 × 10²⁰ ETH in wei, more than exists of any asset.
/// (`UInt64` stopped at about 18.4 ETH.) On the wire and in the journal an amount is 16
/// bytes, big-endian; in Ethereum's ABI it is a `uint256` word whose top 16 bytes are zero.
///
/// Arithmetic is `UInt128`'s: `+`, `-` and `*` trap on overflow, so protocol code uses the
/// `…ReportingOverflow` forms and refuses (`balanceOverflow`) instead of wrapping.
///
/// Why a struct of two words and not `UInt128` itself: Swift 6.3's debug builds corrupt the
/// async context of some calls that pass 16-byte-aligned values (`UInt128`, or a struct
/// holding two) together with other arguments, and the process jumps into the heap
/// (`AmountTests.asyncCallsWithAmountsKeepTheirArguments` reproduces the call shape the
/// settlement adapters use). Two `UInt64` words have 8-byte alignment, which those calls
/// handle. `value` gives the `UInt128` for arithmetic in synchronous code.
public struct Amount: Hashable, Sendable, Comparable, CustomStringConvertible, LosslessStringConvertible,
    ExpressibleByIntegerLiteral, AdditiveArithmetic, Codable
{
    private var high: UInt64
    private var low: UInt64

    public static let zero = Amount(0 as UInt128)
    public static let max = Amount(UInt128.max)

    public init(_ value: UInt128) {
        high = UInt64(truncatingIfNeeded: value >> 64)
        low = UInt64(truncatingIfNeeded: value)
    }

    public init(_ value: UInt64) {
        high = 0
        low = value
    }

    /// A non-negative `Int` (counts, sizes); traps on a negative one, like `UInt64(_:)`.
    public init(_ value: Int) {
        self.init(UInt64(value))
    }

    public init(integerLiteral value: UInt128) {
        self.init(value)
    }

    /// Decimal digits only, as `UInt128` parses them; `nil` for anything else or above `max`.
    public init?(_ description: String) {
        guard let value = UInt128(description) else { return nil }
        self.init(value)
    }

    public var value: UInt128 { UInt128(high) << 64 | UInt128(low) }

    /// The amount as a `UInt64`, when it fits (an amount on a chain with 64-bit balances).
    public var uint64: UInt64? { high == 0 ? low : nil }

    public var description: String { value.description }

    public static func < (lhs: Amount, rhs: Amount) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    public static func + (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value + rhs.value) }
    public static func - (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value - rhs.value) }
    public static func * (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value * rhs.value) }
    public static func / (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value / rhs.value) }
    public static func % (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value % rhs.value) }
    public static func &+ (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value &+ rhs.value) }
    public static func &- (lhs: Amount, rhs: Amount) -> Amount { Amount(lhs.value &- rhs.value) }
    public static func *= (lhs: inout Amount, rhs: Amount) { lhs = lhs * rhs }
    public static func &+= (lhs: inout Amount, rhs: Amount) { lhs = lhs &+ rhs }

    public func addingReportingOverflow(_ other: Amount) -> (partialValue: Amount, overflow: Bool) {
        let (sum, overflow) = value.addingReportingOverflow(other.value)
        return (Amount(sum), overflow)
    }

    public func subtractingReportingOverflow(_ other: Amount) -> (partialValue: Amount, overflow: Bool) {
        let (difference, overflow) = value.subtractingReportingOverflow(other.value)
        return (Amount(difference), overflow)
    }

    public func multipliedReportingOverflow(by other: Amount) -> (partialValue: Amount, overflow: Bool) {
        let (product, overflow) = value.multipliedReportingOverflow(by: other.value)
        return (Amount(product), overflow)
    }

    /// A JSON number (or the coder's form of `UInt128`): `1000000`, not `{"high":0,"low":…}`.
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(UInt128.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

extension WireWriter {
    /// 16 bytes, big-endian.
    public mutating func write(_ amount: Amount) {
        write(amount.value)
    }
}

extension WireReader {
    public mutating func readAmount(_ field: String) throws(WireError) -> Amount {
        Amount(try readUInt128(field))
    }
}
