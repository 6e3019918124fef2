import ParleyChannel
import ParleyWire

/// What the chain did about a channel, as the watcher saw it.
public enum DisputeEvent: Hashable, Sendable {
    case registered(version: UInt64, deadline: UInt64)
    case refuted(version: UInt64)
    case progressed(version: UInt64)
    case concluded(version: UInt64)
    case withdrawn(amount: Amount)
}

/// Everything the journal keeps about one channel, rebuilt by recovery and
/// written whole as a snapshot when a segment is compacted away. Kept in memory for every
/// channel the journal holds, so the states usually absent are kept out of line (`Boxed`).
public struct ChannelRecord: Hashable, Sendable {
    public var params: ChannelParams
    public var funding: Allocation
    /// The newest fully-signed state; for an opener still waiting for its accept, version 0 with our signature only.
    public var latest: SignedState
    /// The highest version we ever signed. A restarted node signs only above it.
    public var highestSignedVersion: UInt64
    /// The state we signed at the version right after `latest` (our first proposal there,
    /// even if it was later aborted), until something newer commits. A move on chain from
    /// `latest` is made at that version and reuses it (`ChannelEngine.signedNext`).
    @Boxed public var pending: SignedState?
    /// The newest final state we signed above `latest` (our signature only) that has not
    /// committed. The peer may hold it countersigned and register it at any time, so once
    /// it exists the channel takes no more updates (Docs/Protocol.md, "What a malicious
    /// peer can and cannot do").
    @Boxed public var signedFinal: SignedState?
    /// Why we decided to leave through the chain, journaled before the watcher acts on it,
    /// so a restart resumes the exit.
    public var exit: ExitReason?
    /// The last dispute event seen on chain.
    public var dispute: DisputeEvent?
    public var isClosed: Bool

    public var channelID: ChannelID { params.id }
}

/// One journal record: a channel's id and what happened to it.
public struct JournalEntry: Hashable, Sendable {
    public var channelID: ChannelID
    public var body: Body

    public enum Body: Hashable, Sendable {
        /// An engine record: opened, signed, committed, aborted.
        case engine(JournalRecord)
        case dispute(DisputeEvent)
        case closed
        /// The whole channel, replacing everything before it (written by compaction).
        case snapshot(ChannelRecord)
        /// We decided to leave through the chain, for this reason. Written before the
        /// watcher registers anything, so a restarted node resumes the exit.
        case exitDecided(ExitReason)
    }

    public init(channelID: ChannelID, body: Body) {
        self.channelID = channelID
        self.body = body
    }

    /// The entry for an engine record; `channelID` names the channel for records that do not carry it.
    public init(_ record: JournalRecord, channelID: ChannelID) {
        self.init(channelID: channelID, body: .engine(record))
    }
}

// MARK: - Canonical encoding

extension JournalEntry: WireCodable {
    private enum Kind: UInt8 {
        case opened = 1, signed = 2, committed = 3, aborted = 4, dispute = 5, closed = 6, snapshot = 7
        case exitDecided = 8
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(channelID)
        switch body {
        case let .engine(.opened(params, funding)):
            writer.write(Kind.opened.rawValue)
            writer.write(params)
            writer.write(funding)
        case let .engine(.signed(signed)):
            writer.write(Kind.signed.rawValue)
            writer.write(signed)
        case let .engine(.committed(signed)):
            writer.write(Kind.committed.rawValue)
            writer.write(signed)
        case let .engine(.aborted(version)):
            writer.write(Kind.aborted.rawValue)
            writer.write(version)
        case let .dispute(event):
            writer.write(Kind.dispute.rawValue)
            writer.write(event)
        case .closed:
            writer.write(Kind.closed.rawValue)
        case let .snapshot(record):
            writer.write(Kind.snapshot.rawValue)
            writer.write(record)
        case let .exitDecided(reason):
            writer.write(Kind.exitDecided.rawValue)
            writer.write(reason.code)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        channelID = try reader.read(ChannelID.self)
        let tag = try reader.readUInt8("journal record kind")
        guard let kind = Kind(rawValue: tag) else { throw .unknownTag(field: "journal record kind", tag: tag) }
        switch kind {
        case .opened:
            body = .engine(.opened(try reader.read(ChannelParams.self), funding: try reader.read(Allocation.self)))
        case .signed: body = .engine(.signed(try reader.read(SignedState.self)))
        case .committed: body = .engine(.committed(try reader.read(SignedState.self)))
        case .aborted: body = .engine(.aborted(version: try reader.readUInt64("aborted version")))
        case .dispute: body = .dispute(try reader.read(DisputeEvent.self))
        case .closed: body = .closed
        case .snapshot: body = .snapshot(try reader.read(ChannelRecord.self))
        case .exitDecided: body = .exitDecided(try Self.readExitReason(&reader))
        }
    }

    static func readExitReason(_ reader: inout WireReader) throws(WireError) -> ExitReason {
        let code = try reader.readUInt8("exit reason")
        guard let reason = ExitReason(code: code) else { throw .unknownTag(field: "exit reason", tag: code) }
        return reason
    }
}

extension DisputeEvent: WireCodable {
    private enum Kind: UInt8 {
        case registered = 1, refuted = 2, progressed = 3, concluded = 4, withdrawn = 5
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .registered(version, deadline):
            writer.write(Kind.registered.rawValue)
            writer.write(version)
            writer.write(deadline)
        case let .refuted(version):
            writer.write(Kind.refuted.rawValue)
            writer.write(version)
        case let .progressed(version):
            writer.write(Kind.progressed.rawValue)
            writer.write(version)
        case let .concluded(version):
            writer.write(Kind.concluded.rawValue)
            writer.write(version)
        case let .withdrawn(amount):
            writer.write(Kind.withdrawn.rawValue)
            writer.write(amount)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let tag = try reader.readUInt8("dispute event")
        guard let kind = Kind(rawValue: tag) else { throw .unknownTag(field: "dispute event", tag: tag) }
        switch kind {
        case .registered:
            self = .registered(version: try reader.readUInt64("version"), deadline: try reader.readUInt64("deadline"))
        case .refuted: self = .refuted(version: try reader.readUInt64("version"))
        case .progressed: self = .progressed(version: try reader.readUInt64("version"))
        case .concluded: self = .concluded(version: try reader.readUInt64("version"))
        case .withdrawn: self = .withdrawn(amount: try reader.readAmount("amount"))
        }
    }
}

extension ChannelRecord: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(params)
        writer.write(funding)
        writer.write(latest)
        writer.write(highestSignedVersion)
        writer.write(pending != nil)
        if let pending { writer.write(pending) }
        writer.write(dispute != nil)
        if let dispute { writer.write(dispute) }
        writer.write(isClosed)
        writer.write(signedFinal != nil)
        if let signedFinal { writer.write(signedFinal) }
        writer.write(exit?.code ?? 0)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        params = try reader.read(ChannelParams.self)
        funding = try reader.read(Allocation.self)
        latest = try reader.read(SignedState.self)
        highestSignedVersion = try reader.readUInt64("highest signed version")
        pending = try reader.readBool("pending present") ? try reader.read(SignedState.self) : nil
        dispute = try reader.readBool("dispute present") ? try reader.read(DisputeEvent.self) : nil
        isClosed = try reader.readBool("closed")
        signedFinal = try reader.readBool("signed final present") ? try reader.read(SignedState.self) : nil
        let exitCode = try reader.readUInt8("exit reason")
        if exitCode == 0 {
            exit = nil
        } else {
            guard let reason = ExitReason(code: exitCode) else { throw .unknownTag(field: "exit reason", tag: exitCode) }
            exit = reason
        }
    }
}
