import ParleyChannel
import ParleyCrypto
import ParleyWire

/// One request to the chain. `Adjudicator.apply` either performs all of it or none.
///
/// Transactions are values with a canonical encoding so the devchain daemon
/// can receive them over the network, persist the applied ones, and replay
/// them into a fresh `Adjudicator` after a restart.
public enum ChainTransaction: Sendable, Equatable {
    /// Faucet for dev chains: creates `amount` in `account`. Any caller.
    case mint(account: PublicKey, amount: Amount)
    /// Moves `amount` from the caller's account into `participant`'s seat of the channel `params` name.
    case deposit(params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount)
    /// The caller takes its deposit back from a channel that never got funded.
    case reclaim(channel: ChannelID)
    /// Registers a fully-signed state, opening (or continuing) the challenge window.
    case register(SignedState)
    /// After the window closed, the mover advances the registered state by one move.
    case progress(channel: ChannelID, state: ChannelState, moverSignature: StateSignature)
    /// Fixes the payout at the registered state's allocation once the window is over.
    case conclude(channel: ChannelID)
    /// Pays `participant`'s concluded amount into that seat's account.
    case withdraw(channel: ChannelID, participant: ParticipantIndex)
}

extension ChainTransaction: WireCodable {
    /// One byte before each transaction's fields; numbers are part of the format, never reuse one.
    private enum Tag: UInt8 {
        case mint = 1, deposit, reclaim, register, progress, conclude, withdraw
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .mint(account, amount):
            writer.write(Tag.mint.rawValue)
            account.encode(to: &writer)
            writer.write(amount)
        case let .deposit(params, opening, participant, amount):
            writer.write(Tag.deposit.rawValue)
            params.encode(to: &writer)
            opening.encode(to: &writer)
            writer.write(seat: participant)
            writer.write(amount)
        case let .reclaim(channel):
            writer.write(Tag.reclaim.rawValue)
            channel.encode(to: &writer)
        case let .register(signed):
            writer.write(Tag.register.rawValue)
            signed.encode(to: &writer)
        case let .progress(channel, state, signature):
            writer.write(Tag.progress.rawValue)
            channel.encode(to: &writer)
            state.encode(to: &writer)
            signature.encode(to: &writer)
        case let .conclude(channel):
            writer.write(Tag.conclude.rawValue)
            channel.encode(to: &writer)
        case let .withdraw(channel, participant):
            writer.write(Tag.withdraw.rawValue)
            channel.encode(to: &writer)
            writer.write(seat: participant)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("transaction kind")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "transaction kind", tag: raw) }
        switch tag {
        case .mint:
            self = .mint(account: try PublicKey(from: &reader), amount: try reader.readAmount("amount"))
        case .deposit:
            self = .deposit(
                params: try ChannelParams(from: &reader), opening: try Allocation(from: &reader),
                participant: try reader.readSeat("participant"), amount: try reader.readAmount("amount"))
        case .reclaim:
            self = .reclaim(channel: try ChannelID(from: &reader))
        case .register:
            self = .register(try SignedState(from: &reader))
        case .progress:
            self = .progress(
                channel: try ChannelID(from: &reader), state: try ChannelState(from: &reader),
                moverSignature: try StateSignature(from: &reader))
        case .conclude:
            self = .conclude(channel: try ChannelID(from: &reader))
        case .withdraw:
            self = .withdraw(channel: try ChannelID(from: &reader), participant: try reader.readSeat("participant"))
        }
    }
}
