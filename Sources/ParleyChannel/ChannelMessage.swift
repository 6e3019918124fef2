import ParleyCrypto
import ParleyWire

/// Opens a channel: the parameters and version 0 (the opening allocation),
/// signed by the proposer. The responder countersigns version 0 to accept.
public struct OpenProposal: Hashable, Sendable {
    public var params: ChannelParams
    public var initial: ChannelState
    public var signature: StateSignature

    public init(params: ChannelParams, initial: ChannelState, signature: StateSignature) {
        self.params = params
        self.initial = initial
        self.signature = signature
    }
}

/// The messages two engines exchange about one channel.
///
/// Encoded as: format version (1 byte), kind tag (1 byte), then the kind's
/// fields in the order listed here. Every message names its channel, so one
/// session can carry many channels.
public enum ChannelMessage: Hashable, Sendable {
    case openProposal(OpenProposal)
    case openAccept(channelID: ChannelID, signature: StateSignature)
    case propose(state: ChannelState, signature: StateSignature)
    case accept(channelID: ChannelID, version: UInt64, signature: StateSignature)
    case reject(channelID: ChannelID, version: UInt64, reason: RejectReason)
    /// After (re)connecting: my latest fully-signed version and the highest version I ever signed.
    case reestablish(channelID: ChannelID, committedVersion: UInt64, highestSignedVersion: UInt64)
    /// A fully-signed state the receiver lacks, sent during reestablish.
    case commitProof(SignedState)

    public var channelID: ChannelID {
        switch self {
        case let .openProposal(proposal): return proposal.params.id
        case let .openAccept(id, _), let .accept(id, _, _), let .reject(id, _, _), let .reestablish(id, _, _):
            return id
        case let .propose(state, _): return state.channelID
        case let .commitProof(signed): return signed.state.channelID
        }
    }

    /// The wire tag of each message kind. Tags are never reused.
    public enum Kind: UInt8, CaseIterable, Sendable {
        case openProposal = 1
        case openAccept = 2
        case propose = 3
        case accept = 4
        case reject = 5
        case reestablish = 6
        case commitProof = 7
    }

    public var kind: Kind {
        switch self {
        case .openProposal: return .openProposal
        case .openAccept: return .openAccept
        case .propose: return .propose
        case .accept: return .accept
        case .reject: return .reject
        case .reestablish: return .reestablish
        case .commitProof: return .commitProof
        }
    }
}

extension ChannelMessage: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(WireLimits.formatVersion)
        writer.write(kind.rawValue)
        switch self {
        case let .openProposal(proposal):
            writer.write(proposal.params)
            writer.write(proposal.initial)
            writer.write(proposal.signature)
        case let .openAccept(id, signature):
            writer.write(id)
            writer.write(signature)
        case let .propose(state, signature):
            writer.write(state)
            writer.write(signature)
        case let .accept(id, version, signature):
            writer.write(id)
            writer.write(version)
            writer.write(signature)
        case let .reject(id, version, reason):
            writer.write(id)
            writer.write(version)
            writer.write(reason)
        case let .reestablish(id, committed, signed):
            writer.write(id)
            writer.write(committed)
            writer.write(signed)
        case let .commitProof(signed):
            writer.write(signed)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let version = try reader.readUInt8("format version")
        guard version == WireLimits.formatVersion else {
            throw .unsupportedVersion(got: version, supported: WireLimits.formatVersion)
        }
        let tag = try reader.readUInt8("message kind")
        guard let kind = Kind(rawValue: tag) else { throw .unknownTag(field: "message kind", tag: tag) }
        switch kind {
        case .openProposal:
            self = .openProposal(OpenProposal(
                params: try reader.read(ChannelParams.self), initial: try reader.read(ChannelState.self),
                signature: try reader.read(StateSignature.self)))
        case .openAccept:
            self = .openAccept(channelID: try reader.read(ChannelID.self), signature: try reader.read(StateSignature.self))
        case .propose:
            self = .propose(state: try reader.read(ChannelState.self), signature: try reader.read(StateSignature.self))
        case .accept:
            self = .accept(
                channelID: try reader.read(ChannelID.self), version: try reader.readUInt64("version"),
                signature: try reader.read(StateSignature.self))
        case .reject:
            self = .reject(
                channelID: try reader.read(ChannelID.self), version: try reader.readUInt64("version"),
                reason: try reader.read(RejectReason.self))
        case .reestablish:
            self = .reestablish(
                channelID: try reader.read(ChannelID.self),
                committedVersion: try reader.readUInt64("committed version"),
                highestSignedVersion: try reader.readUInt64("highest signed version"))
        case .commitProof:
            self = .commitProof(try reader.read(SignedState.self))
        }
    }
}

extension RejectReason: WireCodable {
    private enum Code: UInt8 {
        case concurrentProposal = 1, declined = 2, invalid = 3, channelFinal = 4, notReady = 5
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case .concurrentProposal: writer.write(Code.concurrentProposal.rawValue)
        case let .declined(text):
            writer.write(Code.declined.rawValue)
            writer.writeVariable(Self.clipped(text))
        case let .invalid(text):
            writer.write(Code.invalid.rawValue)
            writer.writeVariable(Self.clipped(text))
        case .channelFinal: writer.write(Code.channelFinal.rawValue)
        case .notReady: writer.write(Code.notReady.rawValue)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let tag = try reader.readUInt8("reject reason")
        guard let code = Code(rawValue: tag) else { throw .unknownTag(field: "reject reason", tag: tag) }
        switch code {
        case .concurrentProposal: self = .concurrentProposal
        case .declined: self = .declined(try Self.readText(&reader))
        case .invalid: self = .invalid(try Self.readText(&reader))
        case .channelFinal: self = .channelFinal
        case .notReady: self = .notReady
        }
    }

    /// Reason texts are for people: cut to the limit at a character boundary so they always encode.
    public static func clip(_ text: String) -> String {
        var clipped = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            guard used + size <= WireLimits.maxReasonBytes else { break }
            clipped.append(character)
            used += size
        }
        return clipped
    }

    private static func clipped(_ text: String) -> [UInt8] {
        Array(clip(text).utf8)
    }

    private static func readText(_ reader: inout WireReader) throws(WireError) -> String {
        let raw = try reader.readVariable(limit: WireLimits.maxReasonBytes, "reason text")
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .invalidValue(field: "reason text", reason: "not valid UTF-8")
        }
        return text
    }
}
