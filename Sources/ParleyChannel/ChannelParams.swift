import ParleyCrypto
import ParleyWire

/// The channel's identity: BLAKE2b-256 of its canonical parameters (settlement domain
/// included) under the `parley/channel-id/v2` domain.
public struct ChannelID: Hashable, Sendable, CustomStringConvertible {
    public let digest: Digest

    public init(digest: Digest) {
        self.digest = digest
    }

    public var description: String { digest.hex }
    /// First eight hex digits, for logs and progress lines.
    public var shortID: String { String(digest.hex.prefix(8)) }
}

extension ChannelID: WireCodable {
    public func encode(to writer: inout WireWriter) {
        digest.encode(to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        digest = try Digest(from: &reader)
    }
}

/// Everything both peers fix when a channel opens. Immutable for the channel's life.
public struct ChannelParams: Hashable, Sendable {
    /// Bytes of randomness that make two channels between the same peers distinct.
    public static let nonceBytes = 32
    /// Shortest and longest challenge windows a channel may ask the chain for, in seconds.
    public static let challengeDurationRange: ClosedRange<UInt64> = 1...(366 * 24 * 3600)
    /// Challenge window used when the caller does not choose one.
    public static let defaultChallengeDuration: UInt64 = 3600
    /// The version of the canonical encoding below: its first byte. Version 2 added the
    /// settlement domain; a version this build does not know is refused when decoded.
    public static let encodingVersion: UInt8 = 2

    /// Public keys in seat order: `participants[0]` proposed the channel.
    public let participants: [PublicKey]
    public let nonce: [UInt8]
    /// Seconds of chain time the other side has to answer a registration.
    public let challengeDuration: UInt64
    public let appID: AppID
    /// The chain (and contract) the channel settles on; bound into the id and so into every signature.
    public let domain: SettlementDomain
    /// Derived from the fields above; never sent, always recomputed.
    public let id: ChannelID

    public init(
        participants: [PublicKey],
        nonce: [UInt8],
        challengeDuration: UInt64 = ChannelParams.defaultChallengeDuration,
        appID: AppID = .payment, domain: SettlementDomain = .embedded
    ) throws(WireError) {
        guard participants.count == 2 else {
            throw .invalidValue(field: "participants", reason: "a channel has exactly two participants")
        }
        guard participants[0] != participants[1] else {
            throw .invalidValue(field: "participants", reason: "the two participants must have different keys")
        }
        guard nonce.count == Self.nonceBytes else {
            throw .invalidValue(field: "nonce", reason: "must be \(Self.nonceBytes) bytes")
        }
        guard Self.challengeDurationRange.contains(challengeDuration) else {
            throw .invalidValue(
                field: "challenge duration",
                reason: "\(challengeDuration)s is outside \(Self.challengeDurationRange) seconds")
        }
        self.participants = participants
        self.nonce = nonce
        self.challengeDuration = challengeDuration
        self.appID = appID
        self.domain = domain
        var writer = WireWriter()
        Self.encodeFields(participants, nonce, challengeDuration, appID, domain, to: &writer)
        id = ChannelID(digest: Blake2b.hash256(domain: .channelID, writer.bytes))
    }

    /// Fresh parameters with a random nonce; `proposer` takes the first seat.
    public static func random(
        proposer: PublicKey, responder: PublicKey,
        challengeDuration: UInt64 = defaultChallengeDuration, appID: AppID = .payment,
        domain: SettlementDomain = .embedded
    ) throws(WireError) -> ChannelParams {
        try ChannelParams(
            participants: [proposer, responder], nonce: SecureRandom.bytes(nonceBytes),
            challengeDuration: challengeDuration, appID: appID, domain: domain)
    }

    public subscript(participant: ParticipantIndex) -> PublicKey {
        participants[Int(participant.rawValue)]
    }

    /// The seat `key` occupies, if any.
    public func index(of key: PublicKey) -> ParticipantIndex? {
        ParticipantIndex.allCases.first { self[$0] == key }
    }

    private static func encodeFields(
        _ participants: [PublicKey], _ nonce: [UInt8], _ challengeDuration: UInt64, _ appID: AppID,
        _ domain: SettlementDomain, to writer: inout WireWriter
    ) {
        writer.write(encodingVersion)
        for key in participants { key.encode(to: &writer) }
        writer.writeFixed(nonce)
        writer.write(challengeDuration)
        appID.encode(to: &writer)
        domain.encode(to: &writer)
    }
}

extension ChannelParams: WireCodable {
    public func encode(to writer: inout WireWriter) {
        Self.encodeFields(participants, nonce, challengeDuration, appID, domain, to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let version = try reader.readUInt8("channel parameters encoding version")
        guard version == Self.encodingVersion else {
            throw .invalidValue(
                field: "channel parameters",
                reason: "encoding version \(version); this build reads version \(Self.encodingVersion)")
        }
        let first = try PublicKey(from: &reader)
        let second = try PublicKey(from: &reader)
        let nonce = try reader.readFixed(Self.nonceBytes, "nonce")
        let duration = try reader.readUInt64("challenge duration")
        let appID = try AppID(from: &reader)
        let domain = try SettlementDomain(from: &reader)
        try self.init(
            participants: [first, second], nonce: nonce, challengeDuration: duration, appID: appID, domain: domain)
    }
}
