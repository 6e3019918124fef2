import ParleyChannel
import ParleyWire

/// A channel snapshot travels from the devchain daemon to its clients
/// (`channel(_:)`), so a remote adapter returns the same value the embedded chain would.
///
/// ```text
/// ChannelOnChain = ChannelParams | opening Allocation | fundedTotal u128 | deposits Allocation
///                  | isFunded bool | depositsClosed bool | registeredState? | isProgressed bool | deadline?
///                  | phase u8 (0 open, 1 disputed, 2 concluded, 3 withdrawn)
///                  | concludedAllocation? | withdrawn u8 (bit 0 seat 0, bit 1 seat 1)
/// optional         = bool present, then the value when present
/// ```
extension ChannelOnChain: WireCodable {
    private static let phases: [ChainPhase] = [.open, .disputed, .concluded, .withdrawn]

    public func encode(to writer: inout WireWriter) {
        params.encode(to: &writer)
        opening.encode(to: &writer)
        writer.write(fundedTotal)
        deposits.encode(to: &writer)
        writer.write(isFunded)
        writer.write(depositsClosed)
        writer.write(registeredState != nil)
        registeredState?.encode(to: &writer)
        writer.write(isProgressed)
        writer.write(deadline != nil)
        deadline?.encode(to: &writer)
        writer.write(UInt8(Self.phases.firstIndex(of: phase) ?? 0))
        writer.write(concludedAllocation != nil)
        concludedAllocation?.encode(to: &writer)
        writer.write(withdrawn.reduce(UInt8(0)) { $0 | (1 << $1.rawValue) })
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let params = try ChannelParams(from: &reader)
        let opening = try Allocation(from: &reader)
        let fundedTotal = try reader.readAmount("funded total")
        guard opening.total == fundedTotal else {
            throw .invalidValue(field: "funded total", reason: "must be the sum of the opening allocation")
        }
        self.init(params: params, opening: opening, fundedTotal: fundedTotal)
        deposits = try Allocation(from: &reader)
        isFunded = try reader.readBool("is funded")
        depositsClosed = try reader.readBool("deposits closed")
        registeredState = try reader.readBool("has registered state") ? try ChannelState(from: &reader) : nil
        isProgressed = try reader.readBool("is progressed")
        deadline = try reader.readBool("has deadline") ? try ChainTime(from: &reader) : nil
        let phase = try reader.readUInt8("chain phase")
        guard Int(phase) < Self.phases.count else { throw .unknownTag(field: "chain phase", tag: phase) }
        self.phase = Self.phases[Int(phase)]
        concludedAllocation = try reader.readBool("has concluded allocation") ? try Allocation(from: &reader) : nil
        let seats = try reader.readUInt8("withdrawn seats")
        guard seats & ~0b11 == 0 else {
            throw .invalidValue(field: "withdrawn seats", reason: "only bits 0 and 1 name seats")
        }
        withdrawn = Set(ParticipantIndex.allCases.filter { seats & (1 << $0.rawValue) != 0 })
    }
}
