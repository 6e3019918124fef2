import ParleyChannel
import ParleyCrypto
import ParleyWire

/// Refusals travel from the devchain daemon to its clients, so a remote
/// adapter throws the same typed error the embedded chain would.
///
/// Texts (`invalidMove`, `transport`) are clipped to `WireLimits.maxReasonBytes`
/// at a character boundary when encoded; everything else round-trips exactly.
extension SettlementError: WireCodable {
    /// One byte before each case's fields; numbers are part of the format, never reuse one.
    private enum Tag: UInt8 {
        case unknownChannel = 1, notAParticipant, badSignature, missingSignature, wrongChannel
        case staleVersion, notNextVersion, windowClosed, windowStillOpen, nothingRegistered
        case alreadyConcluded, notConcluded, alreadyWithdrawn, nothingToWithdraw, underfunded
        case overDeposit, openingMismatch, alreadyFunded, depositsClosed, nothingToReclaim
        case zeroAmount, insufficientBalance, notYourTurn, progressNotAllowed, invalidMove
        case unknownApp, balanceNotConserved, balanceOverflow, transport, wrongDomain, notPermitted
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .unknownChannel(id): writer.write(Tag.unknownChannel.rawValue); id.encode(to: &writer)
        case let .notAParticipant(key, id):
            writer.write(Tag.notAParticipant.rawValue); key.encode(to: &writer); id.encode(to: &writer)
        case let .badSignature(seat): writer.write(Tag.badSignature.rawValue); writer.write(seat: seat)
        case let .missingSignature(seat): writer.write(Tag.missingSignature.rawValue); writer.write(seat: seat)
        case let .wrongChannel(expected, got):
            writer.write(Tag.wrongChannel.rawValue); expected.encode(to: &writer); got.encode(to: &writer)
        case let .staleVersion(registered, got): Self.write(.staleVersion, registered, got, to: &writer)
        case let .notNextVersion(expected, got): Self.write(.notNextVersion, expected, got, to: &writer)
        case let .windowClosed(deadline, now): Self.write(.windowClosed, deadline.seconds, now.seconds, to: &writer)
        case let .windowStillOpen(deadline, now):
            Self.write(.windowStillOpen, deadline.seconds, now.seconds, to: &writer)
        case .nothingRegistered: writer.write(Tag.nothingRegistered.rawValue)
        case .alreadyConcluded: writer.write(Tag.alreadyConcluded.rawValue)
        case .notConcluded: writer.write(Tag.notConcluded.rawValue)
        case let .alreadyWithdrawn(seat): writer.write(Tag.alreadyWithdrawn.rawValue); writer.write(seat: seat)
        case let .nothingToWithdraw(seat): writer.write(Tag.nothingToWithdraw.rawValue); writer.write(seat: seat)
        case let .underfunded(deposited, required): Self.write(.underfunded, deposited, required, to: &writer)
        case let .overDeposit(seat, deposited, amount, required):
            writer.write(Tag.overDeposit.rawValue); writer.write(seat: seat)
            writer.write(deposited); writer.write(amount); writer.write(required)
        case let .openingMismatch(channel, got):
            writer.write(Tag.openingMismatch.rawValue); channel.encode(to: &writer); got.encode(to: &writer)
        case .alreadyFunded: writer.write(Tag.alreadyFunded.rawValue)
        case .depositsClosed: writer.write(Tag.depositsClosed.rawValue)
        case let .nothingToReclaim(seat): writer.write(Tag.nothingToReclaim.rawValue); writer.write(seat: seat)
        case .zeroAmount: writer.write(Tag.zeroAmount.rawValue)
        case let .insufficientBalance(account, has, needs):
            writer.write(Tag.insufficientBalance.rawValue); account.encode(to: &writer)
            writer.write(has); writer.write(needs)
        case let .notYourTurn(expected, got):
            writer.write(Tag.notYourTurn.rawValue); writer.write(seat: expected); writer.write(seat: got)
        case let .progressNotAllowed(why): writer.write(Tag.progressNotAllowed.rawValue); why.encode(to: &writer)
        case let .invalidMove(reason): writer.write(Tag.invalidMove.rawValue); Self.write(text: reason, to: &writer)
        case let .unknownApp(app): writer.write(Tag.unknownApp.rawValue); app.encode(to: &writer)
        case let .balanceNotConserved(funded, proposed): Self.write(.balanceNotConserved, funded, proposed, to: &writer)
        case .balanceOverflow: writer.write(Tag.balanceOverflow.rawValue)
        case let .transport(why): writer.write(Tag.transport.rawValue); Self.write(text: why, to: &writer)
        case let .wrongDomain(expected, got):
            writer.write(Tag.wrongDomain.rawValue); expected.encode(to: &writer); got.encode(to: &writer)
        case let .notPermitted(why): writer.write(Tag.notPermitted.rawValue); Self.write(text: why, to: &writer)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("settlement error")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "settlement error", tag: raw) }
        switch tag {
        case .unknownChannel: self = .unknownChannel(try ChannelID(from: &reader))
        case .notAParticipant: self = .notAParticipant(try PublicKey(from: &reader), try ChannelID(from: &reader))
        case .badSignature: self = .badSignature(try reader.readSeat("signer"))
        case .missingSignature: self = .missingSignature(try reader.readSeat("signer"))
        case .wrongChannel: self = .wrongChannel(expected: try ChannelID(from: &reader), got: try ChannelID(from: &reader))
        case .staleVersion: self = .staleVersion(registered: try reader.readUInt64("version"), got: try reader.readUInt64("version"))
        case .notNextVersion: self = .notNextVersion(expected: try reader.readUInt64("version"), got: try reader.readUInt64("version"))
        case .windowClosed: self = .windowClosed(deadline: try ChainTime(from: &reader), now: try ChainTime(from: &reader))
        case .windowStillOpen: self = .windowStillOpen(deadline: try ChainTime(from: &reader), now: try ChainTime(from: &reader))
        case .nothingRegistered: self = .nothingRegistered
        case .alreadyConcluded: self = .alreadyConcluded
        case .notConcluded: self = .notConcluded
        case .alreadyWithdrawn: self = .alreadyWithdrawn(try reader.readSeat("participant"))
        case .nothingToWithdraw: self = .nothingToWithdraw(try reader.readSeat("participant"))
        case .underfunded: self = .underfunded(deposited: try reader.readAmount("amount"), required: try reader.readAmount("amount"))
        case .overDeposit:
            self = .overDeposit(
                participant: try reader.readSeat("participant"), deposited: try reader.readAmount("amount"),
                amount: try reader.readAmount("amount"), required: try reader.readAmount("amount"))
        case .openingMismatch: self = .openingMismatch(channel: try Allocation(from: &reader), got: try Allocation(from: &reader))
        case .alreadyFunded: self = .alreadyFunded
        case .depositsClosed: self = .depositsClosed
        case .nothingToReclaim: self = .nothingToReclaim(try reader.readSeat("participant"))
        case .zeroAmount: self = .zeroAmount
        case .insufficientBalance:
            self = .insufficientBalance(
                account: try PublicKey(from: &reader), has: try reader.readAmount("amount"), needs: try reader.readAmount("amount"))
        case .notYourTurn: self = .notYourTurn(expected: try reader.readSeat("mover"), got: try reader.readSeat("mover"))
        case .progressNotAllowed: self = .progressNotAllowed(try ProgressRefusal(from: &reader))
        case .invalidMove: self = .invalidMove(try Self.readText(&reader))
        case .unknownApp: self = .unknownApp(try AppID(from: &reader))
        case .balanceNotConserved:
            self = .balanceNotConserved(funded: try reader.readAmount("amount"), proposed: try reader.readAmount("amount"))
        case .balanceOverflow: self = .balanceOverflow
        case .transport: self = .transport(try Self.readText(&reader))
        case .wrongDomain:
            self = .wrongDomain(expected: try SettlementDomain(from: &reader), got: try SettlementDomain(from: &reader))
        case .notPermitted: self = .notPermitted(try Self.readText(&reader))
        }
    }

    private static func write(_ tag: Tag, _ first: UInt64, _ second: UInt64, to writer: inout WireWriter) {
        writer.write(tag.rawValue)
        writer.write(first)
        writer.write(second)
    }

    private static func write(_ tag: Tag, _ first: Amount, _ second: Amount, to writer: inout WireWriter) {
        writer.write(tag.rawValue)
        writer.write(first)
        writer.write(second)
    }

    static func write(text: String, to writer: inout WireWriter) {
        writer.writeVariable(Array(RejectReason.clip(text).utf8))
    }

    static func readText(_ reader: inout WireReader) throws(WireError) -> String {
        let raw = try reader.readVariable(limit: WireLimits.maxReasonBytes, "reason text")
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .invalidValue(field: "reason text", reason: "not valid UTF-8")
        }
        return text
    }
}

extension ProgressRefusal: WireCodable {
    private enum Tag: UInt8 {
        case appHasNoTurns = 1, windowStillOpen, registeredStateIsFinal, versionsExhausted
        case finalStateNeedsBothSignatures
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .appHasNoTurns(app):
            writer.write(Tag.appHasNoTurns.rawValue)
            app.encode(to: &writer)
        case let .windowStillOpen(deadline, now):
            writer.write(Tag.windowStillOpen.rawValue)
            deadline.encode(to: &writer)
            now.encode(to: &writer)
        case .registeredStateIsFinal: writer.write(Tag.registeredStateIsFinal.rawValue)
        case .versionsExhausted: writer.write(Tag.versionsExhausted.rawValue)
        case .finalStateNeedsBothSignatures: writer.write(Tag.finalStateNeedsBothSignatures.rawValue)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("progress refusal")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "progress refusal", tag: raw) }
        switch tag {
        case .appHasNoTurns: self = .appHasNoTurns(try AppID(from: &reader))
        case .windowStillOpen:
            self = .windowStillOpen(deadline: try ChainTime(from: &reader), now: try ChainTime(from: &reader))
        case .registeredStateIsFinal: self = .registeredStateIsFinal
        case .versionsExhausted: self = .versionsExhausted
        case .finalStateNeedsBothSignatures: self = .finalStateNeedsBothSignatures
        }
    }
}
