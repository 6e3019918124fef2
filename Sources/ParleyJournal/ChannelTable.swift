import ParleyChannel

/// Every channel's recovered state, built by applying journal entries in order.
///
/// Recovery and the journal's writer use the same reducer, so what a
/// snapshot writes is exactly what replaying the history would rebuild.
public struct ChannelTable: Sendable {
    public private(set) var channels: [ChannelID: ChannelRecord] = [:]
    /// Entries naming a channel that was never opened in this journal (should be zero).
    public private(set) var orphanEntries = 0

    public init() {}

    public mutating func apply(_ entry: JournalEntry) {
        if case let .snapshot(record) = entry.body {
            channels[entry.channelID] = record
            return
        }
        if case let .engine(.opened(params, funding)) = entry.body {
            guard channels[entry.channelID] == nil else { return }
            let unsigned = ChannelState(channelID: params.id, version: 0, allocation: funding)
            channels[entry.channelID] = ChannelRecord(
                params: params, funding: funding, latest: SignedState(state: unsigned),
                highestSignedVersion: 0, pending: nil, signedFinal: nil, exit: nil, dispute: nil, isClosed: false)
            return
        }
        guard var record = channels[entry.channelID] else {
            orphanEntries += 1
            return
        }
        record.apply(entry.body)
        channels[entry.channelID] = record
    }
}

extension ChannelRecord {
    mutating func apply(_ body: JournalEntry.Body) {
        switch body {
        case let .engine(.signed(signed)):
            highestSignedVersion = max(highestSignedVersion, signed.version)
            if signed.version == 0 && !latest.isFullySigned {
                latest = signed  // the opener's own signature on version 0
            } else if signed.version > latest.version {
                // The first state we signed after `latest` (see `pending`): later ones at
                // higher versions never replace it.
                if signed.version == latest.version + 1, pending == nil { pending = signed }
                if signed.state.isFinal { signedFinal = signed }
            }
        case let .engine(.committed(signed)):
            highestSignedVersion = max(highestSignedVersion, signed.version)
            if signed.version > latest.version || !latest.isFullySigned { latest = signed }
            // `latest` at UInt64.max has no next version (a journal can say so; it must not trap
            // recovery: found by review of the fuzz targets, issue 23).
            if let pending, pending.version <= signed.version || latest.version == .max || pending.version != latest.version + 1 {
                self.pending = nil
            }
            if let signedFinal, signedFinal.version <= signed.version { self.signedFinal = nil }
        case let .engine(.aborted(version)):
            // We only ever abort versions we signed, so the version stays burned after a restart.
            highestSignedVersion = max(highestSignedVersion, version)
            // `pending` stays: a burned version is still one we signed (a move on chain reuses it).
        case let .dispute(event):
            dispute = event
        case .closed:
            isClosed = true
        case let .exitDecided(reason):
            if exit == nil { exit = reason }
        case .engine(.opened), .snapshot:
            break  // handled by the table
        }
    }
}
