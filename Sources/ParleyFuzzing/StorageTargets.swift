import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyJournal
import ParleySettlement
import ParleyWire

extension FuzzTargets {
    /// Journal segments as recovery reads them from disk: the header, framed records with
    /// their CRC-32C, every `JournalEntry` kind inside, and the channel table they rebuild.
    ///
    /// Input: 1 byte of mode. Raw mode scans the rest as a segment file. Framed mode cuts the
    /// rest into record payloads (2-byte lengths), frames them as the journal writes them and
    /// then tears the file at a chosen byte, so the fuzzer reaches the entry decoder past the
    /// checksums, sometimes followed by zeros written ahead (preallocation). Checks: a scan
    /// either throws a `JournalError` or returns records (never both, by its type); good
    /// bytes plus torn bytes plus padding are the whole file, padding is exactly a run of
    /// zeros to the end and never comes with a torn tail; a segment that is not the last
    /// has no torn tail; the records it returns, framed again, are exactly the
    /// good bytes; replaying them into a `ChannelTable` does not trap.
    static let journal = FuzzTarget(
        name: "journal",
        summary: "SegmentFormat.scan over raw and torn framed segments, JournalEntry decoding, ChannelTable replay",
        maxInputBytes: 8 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let mode = input.byte()
            let isLast = mode & 1 == 0
            let index = UInt64(mode >> 2 & 3)
            var segment: [UInt8]
            if mode & 2 == 0 {
                segment = input.rest()
            } else {
                let cut = Int(input.uint16())
                segment = SegmentFormat.header(index: index)
                for payload in input.lengthPrefixedChunks(limit: 2048) { SegmentFormat.frame(payload, into: &segment) }
                if cut < segment.count { segment.removeLast(segment.count - cut) }
                // Zeros written ahead of the records (Journal.preallocationBytes), sometimes.
                if mode & 16 != 0 { segment += [UInt8](repeating: 0, count: Int(mode >> 5) * 61) }
            }
            let scan: SegmentScan
            do {
                scan = try SegmentFormat.scan(segment, name: SegmentFormat.fileName(index: index), expectedIndex: index, isLast: isLast)
            } catch {
                return  // a typed JournalError, and no records: what recovery reports
            }
            try Fuzz.check(isLast || scan.tornBytes == 0, "a segment that is not the last reported a torn tail")
            if scan.validLength == 0 {
                try Fuzz.check(scan.entries.isEmpty && scan.tornBytes == segment.count, "a segment with no good bytes returned records")
                return
            }
            try Fuzz.check(
                scan.validLength + scan.tornBytes + scan.paddingBytes == segment.count,
                "good \(scan.validLength) + torn \(scan.tornBytes) + padding \(scan.paddingBytes) bytes is not the file's \(segment.count)")
            try Fuzz.check(scan.tornBytes == 0 || scan.paddingBytes == 0, "a segment reported both padding and a torn tail")
            try Fuzz.check(
                segment[scan.validLength...].allSatisfy { $0 == 0 } == (scan.paddingBytes > 0 || scan.validLength == segment.count),
                "padding is exactly a run of zeros to the end")
            var again = SegmentFormat.header(index: index)
            for entry in scan.entries { SegmentFormat.frame(entry.wireBytes, into: &again) }
            try Fuzz.canonical(again, segment.prefix(scan.validLength), "the segment's records")
            var table = ChannelTable()
            for entry in scan.entries { table.apply(entry) }
            try Fuzz.check(table.orphanEntries <= scan.entries.count, "more orphan entries than entries")
        },
        seeds: {
            let entries = journalEntries()
            var seeds: [[UInt8]] = []
            for (index, isLast) in [(UInt64(0), true), (1, false)] {
                var segment = SegmentFormat.header(index: index)
                for entry in entries { SegmentFormat.frame(entry.wireBytes, into: &segment) }
                let mode = UInt8(index << 2) | (isLast ? 0 : 1)
                seeds.append([mode] + segment)
                seeds.append([mode] + segment.dropLast(5))  // a torn tail
                seeds.append([mode] + segment.prefix(11))  // a torn header
            }
            // Framed: the record decoder and the table are reached past the checksums. One seed
            // per channel, each ending with its snapshot (the record with the most fields).
            let perChannel = entries.count / max(1, Samples.allParams.count)
            for start in stride(from: 0, to: entries.count, by: max(1, perChannel)) {
                let payloads = entries[start..<min(entries.count, start + perChannel)].map(\.wireBytes)
                seeds.append([2, 0xff, 0xff] + FuzzInput.lengthPrefixed(payloads))
            }
            return seeds
        })

    /// Every kind of journal entry, for the samples' channels, as a node writes them.
    static func journalEntries() -> [JournalEntry] {
        var entries: [JournalEntry] = []
        for params in Samples.allParams {
            let id = params.id
            let funding = Allocation(Amount(1_000), Amount(1_000))
            let opening = Samples.state(params, version: 0)
            let one = Samples.state(params, version: 1, moved: 40)
            let mine = SignedState(state: Samples.state(params, version: 2, moved: 50), signatures: [
                params.sign(Samples.state(params, version: 2, moved: 50), with: Samples.signer(params, 0)), nil,
            ])
            entries += [
                JournalEntry(.opened(params, funding: funding), channelID: id),
                JournalEntry(.committed(Samples.signed(params, opening)), channelID: id),
                JournalEntry(.signed(Samples.signed(params, one)), channelID: id),
                JournalEntry(.committed(Samples.signed(params, one)), channelID: id),
                JournalEntry(.signed(mine), channelID: id),
                JournalEntry(.aborted(version: 2), channelID: id),
                JournalEntry(channelID: id, body: .exitDecided(.peerUnresponsive)),
                JournalEntry(channelID: id, body: .dispute(.registered(version: 1, deadline: 1_000))),
                JournalEntry(channelID: id, body: .dispute(.refuted(version: 1))),
                JournalEntry(channelID: id, body: .dispute(.progressed(version: 2))),
                JournalEntry(channelID: id, body: .dispute(.concluded(version: 2))),
                JournalEntry(channelID: id, body: .dispute(.withdrawn(amount: Amount(960)))),
                JournalEntry(channelID: id, body: .closed),
            ]
            // A snapshot of what those entries rebuild, as compaction writes it.
            var table = ChannelTable()
            for entry in entries where entry.channelID == id { table.apply(entry) }
            if let record = table.channels[id] { entries.append(JournalEntry(channelID: id, body: .snapshot(record))) }
        }
        return entries
    }

    /// The devchain's wire messages (requests, answers, event streams, the payloads of each
    /// answer) and its ledger file, as a client or a restarted daemon reads them.
    ///
    /// Input: 1 byte choosing what to decode, then its bytes. Checks: each message, payload
    /// and ledger record decodes to a value that re-encodes to the input; a ledger file
    /// either fails with a `DevchainStoreError` or returns records whose frames are exactly
    /// its good bytes.
    static let devchain = FuzzTarget(
        name: "devchain",
        summary: "DevchainRequest/ServerMessage/Info, answer payloads, chain events and transactions, the ledger file",
        maxInputBytes: 16 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let choice = input.byte()
            let rest = input.rest()
            switch choice % 11 {
            case 0: try roundTrip(DevchainRequest.self, rest)
            case 1: try roundTrip(DevchainServerMessage.self, rest)
            case 2: try roundTrip(DevchainInfo.self, rest)
            case 3: try roundTrip(ChainEvent.self, rest)
            case 4: try roundTrip(ChainTransaction.self, rest)
            case 5: try roundTrip(ChannelOnChain.self, rest)
            case 6: try roundTrip(SettlementError.self, rest)
            case 7:
                if let events = try? DevchainPayload.decodeEvents(rest) {
                    try Fuzz.canonical(DevchainPayload.events(events), rest, "an events payload")
                }
                if let channel = try? DevchainPayload.decodeChannel(rest) {
                    try Fuzz.canonical(DevchainPayload.channel(channel), rest, "a channel payload")
                }
                if let balance = try? DevchainPayload.decodeBalance(rest) {
                    try Fuzz.canonical(DevchainPayload.balance(balance), rest, "a balance payload")
                }
            case 8: try roundTrip(LedgerRecord.self, rest)
            case 9: try ledger(rest)
            default:
                // A ledger of well-framed records (2-byte lengths), so the record decoder is reached.
                let file = rest.withUnsafeBytes { buffer in
                    var records = FuzzInput(buffer)
                    return LedgerLog.header + records.lengthPrefixedChunks(limit: 2048).flatMap { LedgerLog.frame(body: $0) }
                }
                try ledger(file)
            }
        },
        seeds: {
            var seeds: [[UInt8]] = []
            guard let params = Samples.params else { return [] }
            let signed = Samples.signed(params, Samples.state(params, version: 3, moved: 7))
            let transactions: [ChainTransaction] = [
                .mint(account: Samples.alice.publicKey, amount: Amount(1_000)),
                .deposit(params: params, opening: Allocation(Amount(1_000), Amount(1_000)), participant: .first, amount: Amount(1_000)),
                .reclaim(channel: params.id),
                .register(signed),
                .progress(channel: params.id, state: signed.state, moverSignature: params.sign(signed.state, with: Samples.alice)),
                .conclude(channel: params.id),
                .withdraw(channel: params.id, participant: .second),
            ]
            let requests: [DevchainRequest.Operation] = transactions.map { .submit($0) } + [
                .now, .channel(params.id), .balance(Samples.bob.publicKey), .advance(seconds: 60), .info,
                .subscribe(after: 3), .unsubscribe(subscription: 9),
            ]
            seeds += requests.enumerated().map { [0] + DevchainRequest(id: UInt64($0.offset), operation: $0.element).wireBytes }
            let events: [ChainEvent] = [
                ChainEvent(sequence: 1, time: ChainTime(seconds: 10), channel: params.id, kind: .deposited(participant: .first, amount: Amount(1_000), totalDeposited: Amount(1_000))),
                ChainEvent(sequence: 2, time: ChainTime(seconds: 11), channel: params.id, kind: .funded),
                ChainEvent(sequence: 3, time: ChainTime(seconds: 12), channel: params.id, kind: .registered(version: 3, deadline: ChainTime(seconds: 99), by: .second)),
                ChainEvent(sequence: 4, time: ChainTime(seconds: 13), channel: params.id, kind: .progressed(version: 4, deadline: ChainTime(seconds: 120), mover: .first)),
                ChainEvent(sequence: 5, time: ChainTime(seconds: 14), channel: params.id, kind: .concluded(version: 4, allocation: Allocation(Amount(993), Amount(1_007)))),
                ChainEvent(sequence: 6, time: ChainTime(seconds: 15), channel: params.id, kind: .withdrawn(participant: .first, amount: Amount(993))),
                ChainEvent(sequence: 7, time: ChainTime(seconds: 16), channel: params.id, kind: .reclaimed(participant: .second, amount: Amount(1))),
            ]
            let messages: [DevchainServerMessage] = [
                .response(id: 1, .ok(DevchainPayload.events(events))),
                .response(id: 2, .refused(.staleVersion(registered: 4, got: 3))),
                .response(id: 3, .refused(.windowClosed(deadline: ChainTime(seconds: 5), now: ChainTime(seconds: 6)))),
                .response(id: 4, .failed(.tooManySubscriptions(limit: 64))),
                .events(subscription: 7, events),
            ]
            seeds += messages.map { [1] + $0.wireBytes }
            seeds += events.map { [3] + $0.wireBytes }
            seeds += transactions.map { [4] + $0.wireBytes }
            seeds.append([6] + SettlementError.insufficientBalance(account: Samples.alice.publicKey, has: Amount(1), needs: Amount(2)).wireBytes)
            seeds.append([7] + DevchainPayload.events(events))
            seeds.append([7] + DevchainPayload.balance(Amount(12_345)))
            let records = transactions.enumerated().map { LedgerRecord.transaction($0.element, caller: Samples.alice.publicKey, time: ChainTime(seconds: UInt64($0.offset))) } + [.clock(ChainTime(seconds: 100))]
            seeds += records.map { [8] + $0.wireBytes }
            let file = LedgerLog.header + records.flatMap { LedgerLog.frame($0) }
            seeds.append([9] + file)
            seeds.append([9] + file.dropLast(3))
            seeds.append([10] + FuzzInput.lengthPrefixed(records.prefix(4).map(\.wireBytes)))
            return seeds
        })

    private static func ledger(_ file: [UInt8]) throws(FuzzFinding) {
        guard let (records, goodEnd) = try? LedgerLog.parse(file, path: "ledger.log") else { return }
        try Fuzz.check(goodEnd <= file.count, "the ledger's good bytes run past the file")
        guard file.count >= LedgerLog.header.count else {
            try Fuzz.check(records.isEmpty, "a ledger without a whole header returned records")
            return
        }
        let again = LedgerLog.header + records.flatMap { LedgerLog.frame($0) }
        try Fuzz.canonical(again, file.prefix(goodEnd), "the ledger's records")
    }
}
