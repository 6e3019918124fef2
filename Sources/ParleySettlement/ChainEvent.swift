import ParleyChannel
import ParleyWire

/// Something the chain did to a channel, in chain order.
///
/// `sequence` numbers every event on the chain (all channels together) from 1,
/// with no gaps: a subscriber that remembers the last sequence it handled
/// can resume from it and miss nothing (see `EventSubscriber`).
public struct ChainEvent: Sendable, Equatable, CustomStringConvertible {
    /// 1-based, gap-free, chain-wide.
    public let sequence: UInt64
    /// Chain time of the transaction that caused the event.
    public let time: ChainTime
    /// The channel the transaction acted on.
    public let channel: ChannelID
    /// What happened.
    public let kind: Kind

    /// For adapters that decode events from elsewhere; the chain numbers its own.
    public init(sequence: UInt64, time: ChainTime, channel: ChannelID, kind: Kind) {
        self.sequence = sequence
        self.time = time
        self.channel = channel
        self.kind = kind
    }

    /// What happened to the channel. Amounts are in the chain's smallest unit.
    public enum Kind: Equatable, Sendable {
        /// `participant` deposited `amount`; `totalDeposited` is that seat's deposit afterwards.
        case deposited(participant: ParticipantIndex, amount: Amount, totalDeposited: Amount)
        /// Every seat's deposit now equals the opening allocation.
        case funded
        /// A fully-signed state was registered; the challenge window ends at `deadline`.
        case registered(version: UInt64, deadline: ChainTime, by: ParticipantIndex)
        /// `mover` advanced the registered state by one move; a fresh window ends at `deadline`.
        case progressed(version: UInt64, deadline: ChainTime, mover: ParticipantIndex)
        /// The payout is fixed at `allocation`, from the registered state `version`.
        case concluded(version: UInt64, allocation: Allocation)
        /// `participant`'s payout moved to its account.
        case withdrawn(participant: ParticipantIndex, amount: Amount)
        /// `participant` took its deposit back from a channel that never got funded.
        case reclaimed(participant: ParticipantIndex, amount: Amount)
    }

    public var description: String { "#\(sequence) \(time) \(channel.shortID) \(kind)" }
}

extension ChainEvent: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(sequence)
        time.encode(to: &writer)
        channel.encode(to: &writer)
        kind.encode(to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        sequence = try reader.readUInt64("event sequence")
        guard sequence > 0 else {
            throw .invalidValue(field: "event sequence", reason: "sequences start at 1")
        }
        time = try ChainTime(from: &reader)
        channel = try ChannelID(from: &reader)
        kind = try Kind(from: &reader)
    }
}

extension ChainEvent.Kind: WireCodable {
    /// One byte before each kind's fields; numbers are part of the format, never reuse one.
    private enum Tag: UInt8 {
        case deposited = 1, funded, registered, progressed, concluded, withdrawn, reclaimed
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .deposited(participant, amount, total):
            writer.write(Tag.deposited.rawValue)
            writer.write(seat: participant)
            writer.write(amount)
            writer.write(total)
        case .funded:
            writer.write(Tag.funded.rawValue)
        case let .registered(version, deadline, by):
            writer.write(Tag.registered.rawValue)
            writer.write(version)
            deadline.encode(to: &writer)
            writer.write(seat: by)
        case let .progressed(version, deadline, mover):
            writer.write(Tag.progressed.rawValue)
            writer.write(version)
            deadline.encode(to: &writer)
            writer.write(seat: mover)
        case let .concluded(version, allocation):
            writer.write(Tag.concluded.rawValue)
            writer.write(version)
            allocation.encode(to: &writer)
        case let .withdrawn(participant, amount):
            writer.write(Tag.withdrawn.rawValue)
            writer.write(seat: participant)
            writer.write(amount)
        case let .reclaimed(participant, amount):
            writer.write(Tag.reclaimed.rawValue)
            writer.write(seat: participant)
            writer.write(amount)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("event kind")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "event kind", tag: raw) }
        switch tag {
        case .deposited:
            self = .deposited(
                participant: try reader.readSeat("participant"), amount: try reader.readAmount("amount"),
                totalDeposited: try reader.readAmount("total deposited"))
        case .funded:
            self = .funded
        case .registered:
            self = .registered(
                version: try reader.readUInt64("version"), deadline: try ChainTime(from: &reader),
                by: try reader.readSeat("registered by"))
        case .progressed:
            self = .progressed(
                version: try reader.readUInt64("version"), deadline: try ChainTime(from: &reader),
                mover: try reader.readSeat("mover"))
        case .concluded:
            self = .concluded(version: try reader.readUInt64("version"), allocation: try Allocation(from: &reader))
        case .withdrawn:
            self = .withdrawn(participant: try reader.readSeat("participant"), amount: try reader.readAmount("amount"))
        case .reclaimed:
            self = .reclaimed(participant: try reader.readSeat("participant"), amount: try reader.readAmount("amount"))
        }
    }
}
