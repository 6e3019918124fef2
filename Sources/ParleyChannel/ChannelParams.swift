import ParleyCrypto
import ParleyWire

/// The channel's identity, derived by the channel's backend from all of its parameters
/// (settlement domain included): BLAKE2b-256 of the canonical encoding under
/// `parley/channel-id/v3` on the Ed25519 backend, Keccak-256 of the ABI encoding on Ethereum.
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
    /// settlement domain, version 3 the backend and the signers; a version this build does
    /// not know is refused when decoded.
    public static let encodingVersion: UInt8 = 3

    /// Transport identities in seat order: `participants[0]` proposed the channel.
    public var participants: [PublicKey] { terms.participants }
    /// Settlement addresses in seat order: whose signatures the chain accepts. On the
    /// Ed25519 backend they are the identities themselves.
    public var signers: [SettlementAddress] { terms.signers }
    public var nonce: [UInt8] { terms.nonce }
    /// Seconds of chain time the other side has to answer a registration.
    public var challengeDuration: UInt64 { terms.challengeDuration }
    public var appID: AppID { terms.appID }
    /// The chain (and contract) the channel settles on; bound into the id and so into every signature.
    public var domain: SettlementDomain { terms.domain }
    /// How states are hashed and signed, and how the id is derived (from the signers).
    public let backendID: ChannelBackendID
    /// Derived from the fields above; never sent, always recomputed.
    public let id: ChannelID

    public let terms: ChannelTerms

    /// `signers` defaults to the participants' identity keys: the Ed25519 backend. Ethereum
    /// addresses select the Ethereum backend, whose domain must name its adjudicator.
    public init(
        participants: [PublicKey], signers: [SettlementAddress]? = nil, nonce: [UInt8],
        challengeDuration: UInt64 = ChannelParams.defaultChallengeDuration,
        appID: AppID = .payment, domain: SettlementDomain = .embedded
    ) throws(WireError) {
        guard participants.count == 2 else {
            throw .invalidValue(field: "participants", reason: "a channel has exactly two participants")
        }
        guard participants[0] != participants[1] else {
            throw .invalidValue(field: "participants", reason: "the two participants must have different keys")
        }
        let signers = signers ?? participants.map { .ed25519($0) }
        guard signers.count == 2 else {
            throw .invalidValue(field: "signers", reason: "a channel has exactly two signers")
        }
        guard signers[0] != signers[1] else {
            throw .invalidValue(field: "signers", reason: "the two seats must sign with different keys")
        }
        guard signers[0].backend == signers[1].backend else {
            throw .invalidValue(field: "signers", reason: "both seats must sign under the same backend")
        }
        guard nonce.count == Self.nonceBytes else {
            throw .invalidValue(field: "nonce", reason: "must be \(Self.nonceBytes) bytes")
        }
        guard Self.challengeDurationRange.contains(challengeDuration) else {
            throw .invalidValue(
                field: "challenge duration",
                reason: "\(challengeDuration)s is outside \(Self.challengeDurationRange) seconds")
        }
        let terms = ChannelTerms(
            participants: participants, signers: signers, nonce: nonce, challengeDuration: challengeDuration,
            appID: appID, domain: domain)
        let backend = signers[0].backend.backend
        try backend.validate(terms)
        self.terms = terms
        backendID = backend.id
        var writer = WireWriter()
        Self.encode(terms, backend: backendID, to: &writer)
        id = backend.channelID(of: terms, canonicalBytes: writer.bytes)
    }

    /// Fresh parameters with a random nonce; `proposer` takes the first seat.
    public static func random(
        proposer: PublicKey, responder: PublicKey, signers: [SettlementAddress]? = nil,
        challengeDuration: UInt64 = defaultChallengeDuration, appID: AppID = .payment,
        domain: SettlementDomain = .embedded
    ) throws(WireError) -> ChannelParams {
        try ChannelParams(
            participants: [proposer, responder], signers: signers, nonce: SecureRandom.bytes(nonceBytes),
            challengeDuration: challengeDuration, appID: appID, domain: domain)
    }

    /// The seat's transport identity.
    public subscript(participant: ParticipantIndex) -> PublicKey {
        terms.participants[Int(participant.rawValue)]
    }

    /// The seat's settlement address.
    public func signer(_ participant: ParticipantIndex) -> SettlementAddress {
        terms.signers[Int(participant.rawValue)]
    }

    /// The seat `key` occupies, if any.
    public func index(of key: PublicKey) -> ParticipantIndex? {
        ParticipantIndex.allCases.first { self[$0] == key }
    }

    /// The seat whose states `address` signs, if any.
    public func index(ofSigner address: SettlementAddress) -> ParticipantIndex? {
        ParticipantIndex.allCases.first { signer($0) == address }
    }

    public var backend: any ChannelBackend { backendID.backend }

    /// The 32 bytes each participant signs for `state` in this channel.
    public func signingDigest(of state: ChannelState) -> Digest {
        backend.signingDigest(of: state, domain: terms.domain)
    }

    /// Whether `signature` of `digest` is the seat's.
    public func isValid(_ signature: StateSignature, of digest: Digest, by participant: ParticipantIndex) -> Bool {
        backend.isValid(signature, of: digest, by: signer(participant))
    }

    /// Whether `signature` is the seat's signature of `state`.
    public func isSigned(_ state: ChannelState, by participant: ParticipantIndex, with signature: StateSignature) -> Bool {
        isValid(signature, of: signingDigest(of: state), by: participant)
    }

    /// `key`'s signature of `state` in this channel.
    public func sign(_ state: ChannelState, with key: any StateSigner) -> StateSignature {
        key.signState(signingDigest(of: state))
    }

    private static func encode(_ terms: ChannelTerms, backend: ChannelBackendID, to writer: inout WireWriter) {
        writer.write(encodingVersion)
        writer.write(backend.rawValue)
        for key in terms.participants { key.encode(to: &writer) }
        if backend != .ed25519 {
            for signer in terms.signers { writer.writeFixed(signer.bytes) }
        }
        writer.writeFixed(terms.nonce)
        writer.write(terms.challengeDuration)
        terms.appID.encode(to: &writer)
        terms.domain.encode(to: &writer)
    }
}

extension ChannelParams: WireCodable {
    /// Version, backend, the two identities, the two signers unless they are the identities
    /// (Ed25519), nonce, challenge duration, app id, settlement domain.
    public func encode(to writer: inout WireWriter) {
        Self.encode(terms, backend: backendID, to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let version = try reader.readUInt8("channel parameters encoding version")
        guard version == Self.encodingVersion else {
            throw .invalidValue(
                field: "channel parameters",
                reason: "encoding version \(version); this build reads version \(Self.encodingVersion)")
        }
        let tag = try reader.readUInt8("channel backend")
        guard let backend = ChannelBackendID(rawValue: tag) else {
            throw .unknownTag(field: "channel backend", tag: tag)
        }
        let first = try PublicKey(from: &reader)
        let second = try PublicKey(from: &reader)
        var signers: [SettlementAddress]?
        if backend == .ethereum {
            signers = [.ethereum(try EthereumAddress(from: &reader)), .ethereum(try EthereumAddress(from: &reader))]
        }
        let nonce = try reader.readFixed(Self.nonceBytes, "nonce")
        let duration = try reader.readUInt64("challenge duration")
        let appID = try AppID(from: &reader)
        let domain = try SettlementDomain(from: &reader)
        try self.init(
            participants: [first, second], signers: signers, nonce: nonce, challengeDuration: duration,
            appID: appID, domain: domain)
    }
}
