import ParleyChannel
import ParleyWire

/// What `JournalVerifier.verify` found.
public struct VerificationReport: Sendable {
    /// No violation. A torn tail alone does not make a journal bad.
    public var ok: Bool { violation == nil }
    /// Records read (all of them when the journal is readable).
    public var records: Int
    /// Channels known at the end of the journal.
    public var channels: Int
    public var segments: Int
    /// The last segment ends in a record a crash cut short. The next `Journal` open removes it.
    public var truncatedTail: Bool
    /// The first rule the journal breaks, in journal order.
    public var violation: JournalViolation?
    /// Where `violation` is, when it concerns one record.
    public var location: RecordLocation?
}

/// A record's place in the journal: its segment file and its 1-based position in that file.
public struct RecordLocation: Equatable, Sendable, CustomStringConvertible {
    public var segment: String
    public var record: Int

    public init(segment: String, record: Int) {
        self.segment = segment
        self.record = record
    }

    public var description: String { "\(segment), record \(record)" }
}

/// A rule of the journal that a record breaks. Each case names the channel and version involved.
public enum JournalViolation: Error, Equatable, Sendable, CustomStringConvertible {
    /// The segments cannot be read: a damaged record, a bad header, or an I/O error.
    case unreadable(JournalError)
    /// A record for a channel that neither an `opened` record nor a snapshot introduced.
    case orphanRecord(channel: ChannelID)
    /// A second `opened` record for a channel, with different parameters or funding than the first.
    case conflictingOpen(channel: ChannelID)
    /// A state, or a channel's parameters, filed under another channel. `version` is nil for parameters.
    case wrongChannel(channel: ChannelID, version: UInt64?, belongsTo: ChannelID)
    /// The opening funding itself does not fit in 128 bits.
    case fundingOverflow(channel: ChannelID)
    /// A committed version at or below the previous committed one.
    case versionNotIncreasing(channel: ChannelID, previous: UInt64, got: UInt64)
    /// A state we signed at a version already signed or committed: a second signature on a used version.
    case versionSignedTwice(channel: ChannelID, version: UInt64, highestSigned: UInt64)
    /// Balances that do not add up to the funding; `total` is nil when they overflow 128 bits.
    case notConserved(channel: ChannelID, version: UInt64, total: Amount?, funded: Amount)
    case badSignature(channel: ChannelID, version: UInt64, signer: ParticipantIndex)
    case missingSignature(channel: ChannelID, version: UInt64, signer: ParticipantIndex)
    /// A `signed` record that carries no signature at all.
    case unsigned(channel: ChannelID, version: UInt64)
    /// A state signed or committed after a final state was committed.
    case updateAfterFinal(channel: ChannelID, finalVersion: UInt64, got: UInt64)

    public var description: String {
        switch self {
        case let .unreadable(error):
            return "the journal cannot be read: \(error)"
        case let .orphanRecord(channel):
            return "channel \(channel.shortID): record for a channel this journal never opened "
                + "(a segment holding its opening or snapshot is missing, or records were copied in from another journal)"
        case let .conflictingOpen(channel):
            return "channel \(channel.shortID): opened a second time with different parameters or funding; "
                + "recovery keeps the first, so the second channel's records are applied to the wrong channel"
        case let .wrongChannel(channel, nil, belongsTo):
            return "channel \(channel.shortID): record carries the parameters of channel \(belongsTo.shortID)"
        case let .wrongChannel(channel, version?, belongsTo):
            return "channel \(channel.shortID) version \(version): the state belongs to channel \(belongsTo.shortID)"
        case let .fundingOverflow(channel):
            return "channel \(channel.shortID): the opening funding overflows 128 bits, so no state can conserve it"
        case let .versionNotIncreasing(channel, previous, got):
            return "channel \(channel.shortID) version \(got): committed after version \(previous); "
                + "committed versions must strictly increase, or an old state could be replayed on chain"
        case let .versionSignedTwice(channel, version, highestSigned):
            return "channel \(channel.shortID) version \(version): signed after version \(highestSigned) was already "
                + "signed or committed; signing a used version twice lets the peer register either state "
                + "(was this journal restored from an old backup, or shared by two nodes?)"
        case let .notConserved(channel, version, nil, funded):
            return "channel \(channel.shortID) version \(version): balances overflow 128 bits; the channel holds \(funded)"
        case let .notConserved(channel, version, total?, funded):
            return "channel \(channel.shortID) version \(version): balances add up to \(total), "
                + "but the channel was funded with \(funded)"
        case let .badSignature(channel, version, signer):
            return "channel \(channel.shortID) version \(version): the signature of \(signer) does not verify; "
                + "the state cannot be used on chain"
        case let .missingSignature(channel, version, signer):
            return "channel \(channel.shortID) version \(version): recorded as committed without the signature of \(signer)"
        case let .unsigned(channel, version):
            return "channel \(channel.shortID) version \(version): a signed record without any signature"
        case let .updateAfterFinal(channel, finalVersion, got):
            return "channel \(channel.shortID) version \(got): signed after the final version \(finalVersion) was "
                + "committed; a final state ends the channel"
        }
    }
}

/// Checks a journal directory against the rules every journal a node writes keeps.
///
/// Strictly read-only: it takes no lock and never truncates a torn tail, so
/// it is safe to run against the journal of a running node (it then sees a
/// prefix of the records, possibly ending in a torn one).
public enum JournalVerifier {
    public static func verify(
        directory: String, fileSystem: any JournalFileSystem = POSIXJournalFileSystem()
    ) -> VerificationReport {
        let contents: JournalContents
        do { contents = try JournalContents.read(directory: directory, fileSystem: fileSystem, keepEntries: true) } catch {
            return VerificationReport(records: 0, channels: 0, segments: 0, truncatedTail: false, violation: .unreadable(error))
        }
        var report = VerificationReport(
            records: contents.recordsRead, channels: contents.table.channels.count, segments: contents.segments.count,
            truncatedTail: contents.tornBytes > 0)
        var replay = Replay(entries: contents.entries)
        for (position, entry) in contents.entries.enumerated() {
            do { try replay.check(entry, at: position) } catch {
                report.violation = error
                report.location = location(ofRecordAt: position, in: contents.segments)
                break
            }
        }
        return report
    }

    private static func location(ofRecordAt position: Int, in segments: [JournalContents.Segment]) -> RecordLocation? {
        var before = 0
        for segment in segments {
            if position < before + segment.records { return RecordLocation(segment: segment.name, record: position - before + 1) }
            before += segment.records
        }
        return nil
    }
}

/// The verifier's walk through the records, in journal order.
private struct Replay {
    var histories: [ChannelID: ChannelHistory] = [:]
    /// Position of each channel's last snapshot. Records before it whose channel is unknown are
    /// left over from a compaction that crashed while deleting old segments (oldest first), not orphans.
    let lastSnapshot: [ChannelID: Int]

    init(entries: [JournalEntry]) {
        var lastSnapshot: [ChannelID: Int] = [:]
        for (position, entry) in entries.enumerated() {
            if case .snapshot = entry.body { lastSnapshot[entry.channelID] = position }
        }
        self.lastSnapshot = lastSnapshot
    }

    mutating func check(_ entry: JournalEntry, at position: Int) throws(JournalViolation) {
        let channel = entry.channelID
        switch entry.body {
        case let .engine(.opened(params, funding)):
            if let known = histories[channel] {
                guard known.params == params && known.funding == funding else { throw .conflictingOpen(channel: channel) }
                return
            }
            histories[channel] = try ChannelHistory(opening: params, funding: funding, channel: channel)
            return
        case let .snapshot(record):
            histories[channel] = try ChannelHistory(snapshot: record, channel: channel)
            return
        default:
            break
        }
        guard var history = histories[channel] else {
            if let snapshot = lastSnapshot[channel], snapshot > position { return }
            throw .orphanRecord(channel: channel)
        }
        switch entry.body {
        case let .engine(.signed(signed)): try history.sign(signed)
        case let .engine(.committed(signed)): try history.commit(signed)
        default: return  // aborted, dispute, closed: nothing to check beyond the channel being known
        }
        histories[channel] = history
    }
}

/// What the verifier remembers about one channel while it reads the journal.
private struct ChannelHistory {
    let channel: ChannelID
    let params: ChannelParams
    let funding: Allocation
    let funded: Amount
    /// The last fully-signed version, nil before the first commit.
    var committed: UInt64?
    /// The highest version signed or committed, nil before the first signature.
    var highestSigned: UInt64?
    /// The version of a committed final state: nothing may be signed after it.
    var finalVersion: UInt64?

    init(opening params: ChannelParams, funding: Allocation, channel: ChannelID) throws(JournalViolation) {
        guard params.id == channel else { throw .wrongChannel(channel: channel, version: nil, belongsTo: params.id) }
        guard let funded = funding.total else { throw .fundingOverflow(channel: channel) }
        self.channel = channel
        self.params = params
        self.funding = funding
        self.funded = funded
    }

    /// A snapshot replaces the history: its own states are checked, and checking continues from them.
    init(snapshot record: ChannelRecord, channel: ChannelID) throws(JournalViolation) {
        try self.init(opening: record.params, funding: record.funding, channel: channel)
        let latest = record.latest
        // Only the opener's version 0, waiting for the accept, may be less than fully signed.
        let isOpenerWaiting = latest.version == 0 && !latest.isFullySigned
        try check(latest, requireBoth: !isOpenerWaiting)
        if let pending = record.pending {
            try check(pending, requireBoth: false)
            try requireAnySignature(pending)
        }
        if latest.isFullySigned {
            committed = latest.version
            if latest.state.isFinal { finalVersion = latest.version }
        }
        let hasSigned = latest.signatures.contains { $0 != nil } || record.pending != nil || record.highestSignedVersion > 0
        if hasSigned {
            highestSigned = max(record.highestSignedVersion, latest.version, record.pending?.version ?? 0)
        }
    }

    /// Our signature on a proposal (or the opener's on version 0): at least one valid signature, on an unused version.
    mutating func sign(_ signed: SignedState) throws(JournalViolation) {
        try check(signed, requireBoth: false)
        try requireAnySignature(signed)
        try requireNotFinal(signed)
        if let highestSigned, signed.version <= highestSigned {
            throw .versionSignedTwice(channel: channel, version: signed.version, highestSigned: highestSigned)
        }
        highestSigned = signed.version
    }

    /// A fully-signed state, above the previous committed one.
    mutating func commit(_ signed: SignedState) throws(JournalViolation) {
        try check(signed, requireBoth: true)
        try requireNotFinal(signed)
        if let committed, signed.version <= committed {
            throw .versionNotIncreasing(channel: channel, previous: committed, got: signed.version)
        }
        committed = signed.version
        highestSigned = max(highestSigned ?? 0, signed.version)
        if signed.state.isFinal { finalVersion = signed.version }
    }

    private func check(_ signed: SignedState, requireBoth: Bool) throws(JournalViolation) {
        let version = signed.version
        guard signed.state.channelID == channel else {
            throw .wrongChannel(channel: channel, version: version, belongsTo: signed.state.channelID)
        }
        let total = signed.state.allocation.total
        guard total == funded else { throw .notConserved(channel: channel, version: version, total: total, funded: funded) }
        do { try signed.verify(against: params, requireBoth: requireBoth) } catch {
            switch error {
            case let .missingSignature(signer): throw .missingSignature(channel: channel, version: version, signer: signer)
            case let .badSignature(signer): throw .badSignature(channel: channel, version: version, signer: signer)
            default: throw .wrongChannel(channel: channel, version: version, belongsTo: signed.state.channelID)
            }
        }
    }

    private func requireAnySignature(_ signed: SignedState) throws(JournalViolation) {
        guard signed.signatures.contains(where: { $0 != nil }) else {
            throw .unsigned(channel: channel, version: signed.version)
        }
    }

    private func requireNotFinal(_ signed: SignedState) throws(JournalViolation) {
        if let finalVersion {
            throw .updateAfterFinal(channel: channel, finalVersion: finalVersion, got: signed.version)
        }
    }
}
