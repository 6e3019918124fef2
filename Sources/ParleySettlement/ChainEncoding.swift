import ParleyChannel
import ParleyWire

/// Small pieces of the chain's canonical encoding shared by events and transactions.
///
/// A seat is one byte, 0 or 1; any other byte is `WireError.unknownTag`.
extension WireWriter {
    mutating func write(seat: ParticipantIndex) {
        write(seat.rawValue)
    }
}

extension WireReader {
    mutating func readSeat(_ field: String) throws(WireError) -> ParticipantIndex {
        let raw = try readUInt8(field)
        guard let seat = ParticipantIndex(rawValue: raw) else { throw .unknownTag(field: field, tag: raw) }
        return seat
    }
}
