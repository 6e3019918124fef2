import ArgumentParser
import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySubprocess
import ParleyWire

/// `parley journal`: look into, check and benchmark a node's dispute journal.
struct JournalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Inspect, verify or benchmark a dispute journal.",
        discussion: """
            A node journals every state it signs and every fully-signed state before it \
            acts on it, so that after a crash it can still win a dispute on chain. \
            `inspect` and `verify` only read the journal directory: they take no lock and \
            never truncate a torn tail, so they are safe to run against a running node's \
            journal (they then see the records written so far). `bench` writes a fresh \
            journal of its own and measures how many records per second group commit sustains.

            Examples:
              parley journal inspect ~/.parley/journal
              parley journal inspect ~/.parley/journal --channel 3fa2c1 --json
              parley journal verify ~/.parley/journal
              parley journal bench --writers 100 --records 20000
            """,
        subcommands: [Inspect.self, Verify.self, Bench.self]
    )
}

extension Durability: ExpressibleByArgument {}

// MARK: - inspect

extension JournalCommand {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the channels a journal holds, and optionally their records.",
            discussion: """
                For each channel: its id, the participants' short ids, the app, the funding, \
                the latest fully-signed version and balances, whether it is final, the highest \
                version this node ever signed, a pending proposal, the last dispute event seen \
                on chain, and whether it is closed. History starts at the channel's latest \
                snapshot once compaction has removed older segments. Read-only.
                """)

        @Argument(help: ArgumentHelp("The journal directory.", valueName: "dir"))
        var directory: String

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Show only this channel: its hex id or a prefix of it that names one channel. Implies --history.",
                valueName: "id"))
        var channel: String?

        @Flag(name: .long, help: "Also list each channel's records, oldest first: kind, version, balances.")
        var history = false

        @Flag(
            name: .long,
            help: #"Print {"channels": [...], "records", "segments", "truncatedTail"} as one JSON object."#)
        var json = false

        func validate() throws {
            if let channel, channel.isEmpty || !channel.allSatisfy(\.isHexDigit) {
                throw ValidationError("--channel takes hex digits of a channel id, such as 3fa2c1.")
            }
        }

        func run() throws {
            let showHistory = history || channel != nil
            let contents: JournalContents
            do {
                contents = try JournalContents.read(directory: directory, keepEntries: showHistory)
            } catch {
                throw failure("journal inspect", "\(error)")
            }
            var records = contents.table.channels.values.sorted { $0.channelID.description < $1.channelID.description }
            if let channel { records = [try select(channel, from: records)] }
            let summaries = records.map { record in
                ChannelSummary(record, history: showHistory ? HistoryLine.lines(of: record.channelID, in: contents.entries) : nil)
            }
            let journal = JournalSummary(
                channels: summaries, records: contents.recordsRead, segments: contents.segments.count,
                truncatedTail: contents.tornBytes > 0)
            if json {
                try printJSON(journal)
            } else {
                printText(journal)
            }
        }

        private func select(_ prefix: String, from records: [ChannelRecord]) throws -> ChannelRecord {
            let matches = records.filter { $0.channelID.description.hasPrefix(prefix.lowercased()) }
            guard matches.count == 1, let match = matches.first else {
                if matches.isEmpty { throw failure("journal inspect", "no channel in \(directory) has an id starting with \(prefix)") }
                let ids = matches.prefix(5).map(\.channelID.shortID).joined(separator: ", ")
                throw failure("journal inspect", "\(prefix) matches \(matches.count) channels (\(ids)…); give more digits")
            }
            return match
        }

        private func printText(_ journal: JournalSummary) {
            print("journal \(directory): \(plural(journal.records, "record")) in \(plural(journal.segments, "segment")), "
                + plural(journal.channels.count, "channel"))
            if journal.truncatedTail { print("torn tail present: it will be removed when a node next opens this journal") }
            for summary in journal.channels {
                print("")
                print(summary.text)
            }
        }
    }
}

/// One channel as `inspect` shows it. Encodes `pending` and `dispute` as null when absent.
private struct ChannelSummary: Encodable {
    var id: String
    var participants: [String]
    var participantShortIDs: [String]
    var app: String
    var funding: [Amount]
    var version: UInt64
    var balances: [Amount]
    var fullySigned: Bool
    var final: Bool
    var highestSigned: UInt64
    var pending: UInt64?
    var dispute: String?
    var closed: Bool
    var history: [HistoryLine]?

    init(_ record: ChannelRecord, history: [HistoryLine]?) {
        id = record.channelID.description
        participants = record.params.participants.map(\.hex)
        participantShortIDs = record.params.participants.map(\.shortID)
        app = record.params.appID.rawValue
        funding = record.funding.balances
        version = record.latest.version
        balances = record.latest.state.allocation.balances
        fullySigned = record.latest.isFullySigned
        final = record.latest.state.isFinal
        highestSigned = record.highestSignedVersion
        pending = record.pending?.version
        dispute = record.dispute.map(describe)
        closed = record.isClosed
        self.history = history
    }

    enum CodingKeys: String, CodingKey {
        case id, participants, app, funding, version, balances, fullySigned, final, highestSigned, pending, dispute, closed
        case history
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(participants, forKey: .participants)
        try container.encode(app, forKey: .app)
        try container.encode(funding, forKey: .funding)
        try container.encode(version, forKey: .version)
        try container.encode(balances, forKey: .balances)
        try container.encode(fullySigned, forKey: .fullySigned)
        try container.encode(final, forKey: .final)
        try container.encode(highestSigned, forKey: .highestSigned)
        try container.encode(pending, forKey: .pending)
        try container.encode(dispute, forKey: .dispute)
        try container.encode(closed, forKey: .closed)
        try container.encodeIfPresent(history, forKey: .history)
    }

    var text: String {
        let total = funding.reduce(0 as Amount) { $0.addingReportingOverflow($1).partialValue }
        var lines = [
            "channel \(id)",
            field("participants", participantShortIDs.joined(separator: ", ")),
            field("app", app),
            field("funding", "[\(funding.map(String.init).joined(separator: ", "))], total \(total)"),
            field("latest", "version \(version), balances [\(balances.map(String.init).joined(separator: ", "))]"
                + (fullySigned ? "" : " (awaiting the peer's signature)")),
            field("final", final ? "yes" : "no"),
            field("highest signed", "version \(highestSigned)"),
            field("pending", pending.map { "proposal for version \($0)" } ?? "none"),
            field("dispute", dispute ?? "none"),
            field("closed", closed ? "yes" : "no"),
        ]
        if let history {
            lines.append("  history (\(plural(history.count, "record"))):")
            lines += history.map { "    " + $0.text }
        }
        return lines.joined(separator: "\n")
    }

    private func field(_ label: String, _ value: String) -> String {
        "  " + label.padding(toLength: 16, withPad: " ", startingAt: 0) + value
    }
}

/// One record of a channel's history, as `inspect --history` lists it.
private struct HistoryLine: Encodable {
    var kind: String
    var version: UInt64?
    var balances: [Amount]?
    var detail: String?

    static func lines(of channel: ChannelID, in entries: [JournalEntry]) -> [HistoryLine] {
        entries.filter { $0.channelID == channel }.map { HistoryLine($0.body) }
    }

    init(_ body: JournalEntry.Body) {
        switch body {
        case let .engine(.opened(params, funding)):
            self.init(kind: "opened", version: 0, balances: funding.balances,
                      detail: "app \(params.appID), challenge \(params.challengeDuration) s")
        case let .engine(.signed(signed)):
            self.init(kind: "signed", signed)
        case let .engine(.committed(signed)):
            self.init(kind: "committed", signed)
        case let .engine(.aborted(version)):
            self.init(kind: "aborted", version: version, balances: nil, detail: "proposal burned")
        case let .dispute(event):
            self.init(kind: "dispute", version: event.version, balances: nil, detail: describe(event))
        case .closed:
            self.init(kind: "closed", version: nil, balances: nil, detail: nil)
        case let .exitDecided(reason):
            self.init(kind: "exit", version: nil, balances: nil, detail: "leaving on chain: \(reason.explanation)")
        case let .snapshot(record):
            let pending = record.pending.map { ", pending version \($0.version)" } ?? ""
            self.init(kind: "snapshot", version: record.latest.version, balances: record.latest.state.allocation.balances,
                      detail: "highest signed version \(record.highestSignedVersion)\(pending)")
        }
    }

    private init(kind: String, _ signed: SignedState) {
        let seats = ParticipantIndex.allCases.filter { signed[$0] != nil }.map { String($0.rawValue) }
        let signers = switch seats.count {
        case 0: "no signatures"
        case 1: "signed by seat \(seats[0]) only"
        default: "signed by both seats"
        }
        self.init(kind: kind, version: signed.version, balances: signed.state.allocation.balances,
                  detail: signers + (signed.state.isFinal ? ", final" : ""))
    }

    private init(kind: String, version: UInt64?, balances: [Amount]?, detail: String?) {
        self.kind = kind
        self.version = version
        self.balances = balances
        self.detail = detail
    }

    var text: String {
        let version = self.version.map { "v\($0)" } ?? "-"
        let balances = self.balances.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? ""
        return [
            kind.padding(toLength: 10, withPad: " ", startingAt: 0),
            version.padding(toLength: 8, withPad: " ", startingAt: 0),
            balances.padding(toLength: 24, withPad: " ", startingAt: 0),
            detail ?? "",
        ].joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }
}

private struct JournalSummary: Encodable {
    var channels: [ChannelSummary]
    var records: Int
    var segments: Int
    var truncatedTail: Bool
}

private func describe(_ event: DisputeEvent) -> String {
    switch event {
    case let .registered(version, deadline): return "version \(version) registered on chain, challenge ends at \(deadline)"
    case let .refuted(version): return "refuted with version \(version)"
    case let .progressed(version): return "progressed on chain to version \(version)"
    case let .concluded(version): return "concluded on chain at version \(version)"
    case let .withdrawn(amount): return "withdrew \(amount)"
    }
}

extension DisputeEvent {
    /// The state version the event concerns, if any.
    fileprivate var version: UInt64? {
        switch self {
        case let .registered(version, _), let .refuted(version), let .progressed(version), let .concluded(version):
            return version
        case .withdrawn:
            return nil
        }
    }
}

// MARK: - verify

extension JournalCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a journal's records against the protocol's rules. Exits 1 on the first violation.",
            discussion: """
                Checks every checksum and, per channel: records only for opened channels, \
                committed versions strictly increasing, no version signed twice, balances \
                adding up to the funding, every signature valid (both on committed states), \
                and nothing signed after a final state. Snapshots written by compaction are \
                checked the same way and restart a channel's history. A torn record at the \
                very end (a write cut short by a crash) is reported, not a failure: the node \
                removes it when it next opens the journal. Read-only.
                """)

        @Argument(help: ArgumentHelp("The journal directory.", valueName: "dir"))
        var directory: String

        @Flag(
            name: .long,
            help: #"Print {"ok", "records", "channels", "segments", "truncatedTail", "violation", "location"} as JSON."#)
        var json = false

        func run() throws {
            let report = JournalVerifier.verify(directory: directory)
            if json {
                try printJSON(VerificationSummary(report))
            } else if let violation = report.violation {
                print("FAILED: \(violation)" + (report.location.map { " (\($0))" } ?? ""))
            } else {
                print("ok: \(plural(report.records, "record")), \(plural(report.channels, "channel")), "
                    + plural(report.segments, "segment"))
                if report.truncatedTail {
                    print("torn tail present: it will be removed when a node next opens this journal")
                }
            }
            if !report.ok { throw ExitCode(1) }
        }
    }
}

/// `verify --json`. Encodes `violation` and `location` as null when absent.
private struct VerificationSummary: Encodable {
    var report: VerificationReport

    init(_ report: VerificationReport) {
        self.report = report
    }

    enum CodingKeys: String, CodingKey {
        case ok, records, channels, segments, truncatedTail, violation, location
    }

    struct Location: Encodable {
        var segment: String
        var record: Int
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(report.ok, forKey: .ok)
        try container.encode(report.records, forKey: .records)
        try container.encode(report.channels, forKey: .channels)
        try container.encode(report.segments, forKey: .segments)
        try container.encode(report.truncatedTail, forKey: .truncatedTail)
        try container.encode(report.violation?.description, forKey: .violation)
        try container.encode(report.location.map { Location(segment: $0.segment, record: $0.record) }, forKey: .location)
    }
}

// MARK: - bench

extension JournalCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure journal throughput with concurrent writers (group commit).",
            discussion: """
                Opens a fresh journal and runs N writers at once. Each writer owns one channel \
                and appends committed-state records (about 220 bytes, two real signatures) one \
                at a time, waiting for each to be durable before the next, as a channel does. \
                Appends that arrive while a sync is running share the next one, so records per \
                sync grows with the number of writers. Signing the states happens before the \
                clock starts. Prints records per second, total seconds, syncs and records per sync.
                """)

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Write the journal here and keep it (the directory must not already hold a journal). "
                    + "Default: a new temporary directory under /tmp, removed afterwards.",
                valueName: "dir"))
        var dir: String?

        @Option(name: .long, help: "Concurrent writers, each with its own channel.")
        var writers = 1

        @Option(name: .long, help: "Records to append in total, shared evenly among the writers.")
        var records = 2000

        @Option(
            name: .long,
            help: ArgumentHelp(
                "fsync: each append waits for fsync, as a node does. none: waits only for write(2), so a "
                    + "power loss can lose acknowledged records; .none is for tests and throwaway demos only.",
                valueName: "mode"))
        var durability: Durability = .fsync

        @Flag(
            name: .long,
            help: #"Print {"writers", "records", "seconds", "recordsPerSecond", "syncs", "recordsPerSync", "durability"} as JSON."#)
        var json = false

        func validate() throws {
            guard writers >= 1 else { throw ValidationError("--writers must be at least 1.") }
            guard records >= writers else { throw ValidationError("--records must be at least --writers (\(writers)).") }
        }

        func run() async throws {
            let (path, isTemporary) = try prepareDirectory()
            defer { if isTemporary { try? FileManager.default.removeItem(atPath: path) } }
            let result: BenchResult
            do {
                let workload = try await BenchWorkload.make(writers: writers, records: records)
                result = try await workload.run(in: path, durability: durability)
            } catch {
                throw failure("journal bench", "\(error)")
            }
            if json {
                try printJSON(result)
            } else {
                print(result.text)
                print(isTemporary ? "journal: \(path) (removed)" : "journal: \(path) (kept)")
            }
        }

        /// The directory to write, and whether bench created it and must remove it.
        private func prepareDirectory() throws -> (String, Bool) {
            if let dir {
                // Never add bench channels to a node's real journal.
                let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                if names.contains(where: { SegmentFormat.index(ofFileName: $0) != nil }) {
                    throw failure("journal bench", "\(dir) already holds a journal; bench writes only to a fresh directory")
                }
                return (dir, false)
            }
            var template = Array("/tmp/parley-bench-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else {
                throw failure("journal bench", "cannot create a temporary directory under /tmp: \(String(cString: strerror(errno)))")
            }
            return (String(cString: made), true)
        }
    }
}

/// The records bench appends: one channel per writer, committed versions 1, 2, 3... of each.
private struct BenchWorkload: Sendable {
    /// Both sides' opening balance: large enough that a long run's payments never exhaust it.
    static let openingBalance: Amount = 1_000_000

    var openings: [JournalEntry]
    var writers: [[JournalEntry]]

    /// Signs every state up front (on all cores), so the measurement is the journal alone.
    static func make(writers: Int, records: Int) async throws -> BenchWorkload {
        let alice = SigningKey()
        let bob = SigningKey()
        var openings: [JournalEntry] = []
        var counts: [(ChannelParams, Int)] = []
        for writer in 0..<writers {
            let params = try ChannelParams.random(proposer: alice.publicKey, responder: bob.publicKey)
            let funding = Allocation(openingBalance, openingBalance)
            openings.append(JournalEntry(.opened(params, funding: funding), channelID: params.id))
            counts.append((params, records / writers + (writer < records % writers ? 1 : 0)))
        }
        let histories = await withTaskGroup(of: (Int, [JournalEntry]).self) { group in
            for (index, (params, count)) in counts.enumerated() {
                group.addTask { (index, history(of: params, count: count, keys: [alice, bob])) }
            }
            var histories = [[JournalEntry]](repeating: [], count: writers)
            for await (index, entries) in group { histories[index] = entries }
            return histories
        }
        return BenchWorkload(openings: openings, writers: histories)
    }

    private static func history(of params: ChannelParams, count: Int, keys: [SigningKey]) -> [JournalEntry] {
        (1...UInt64(count)).map { version in
            let paid = Amount(version % 1000)
            let state = ChannelState(
                channelID: params.id, version: version,
                allocation: Allocation(openingBalance - paid, openingBalance + paid))
            let signed = SignedState(state: state, signatures: keys.map { state.signed(by: $0) })
            return JournalEntry(.committed(signed), channelID: params.id)
        }
    }

    func run(in directory: String, durability: Durability) async throws -> BenchResult {
        let journal = try Journal(directory: directory, durability: durability)
        defer { journal.close() }
        try await journal.append(openings)
        let before = journal.statistics
        let total = writers.reduce(0) { $0 + $1.count }
        let start = ContinuousClock.now
        let progress = isatty(STDERR_FILENO) != 0
            ? Task { await BenchProgress.show(journal, baseline: before.records, total: total, start: start) } : nil
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entries in writers {
                group.addTask {
                    for entry in entries { try await journal.append([entry]) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = durationSeconds(start.duration(to: .now))
        progress?.cancel()
        await progress?.value
        let after = journal.statistics
        return BenchResult(
            writers: writers.count, records: after.records - before.records, seconds: seconds,
            syncs: after.syncs - before.syncs, durability: durability)
    }
}

/// A `\r`-updated progress line on stderr, at most ten times a second, once a run lasts half a second.
private enum BenchProgress {
    static let interval = Duration.milliseconds(100)
    static let quietPeriod = 0.5

    static func show(_ journal: Journal, baseline: Int, total: Int, start: ContinuousClock.Instant) async {
        await showProgressLine(every: interval) {
            let elapsed = durationSeconds(start.duration(to: .now))
            guard elapsed >= quietPeriod else { return nil }
            let done = journal.statistics.records - baseline
            return "\(done)/\(total) records, \(Int(Double(done) / elapsed)) records/s"
        }
    }
}

private struct BenchResult: Encodable {
    var writers: Int
    var records: Int
    var seconds: Double
    var recordsPerSecond: Double
    var syncs: Int
    /// Nil without fsync: there are no syncs to share.
    var recordsPerSync: Double?
    var durability: String

    init(writers: Int, records: Int, seconds: Double, syncs: Int, durability: Durability) {
        self.writers = writers
        self.records = records
        self.seconds = rounded(seconds, digits: 6)
        recordsPerSecond = rounded(seconds > 0 ? Double(records) / seconds : 0, digits: 1)
        self.syncs = syncs
        recordsPerSync = syncs > 0 ? rounded(Double(records) / Double(syncs), digits: 2) : nil
        self.durability = durability.rawValue
    }

    enum CodingKeys: String, CodingKey {
        case writers, records, seconds, recordsPerSecond, syncs, recordsPerSync, durability
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(writers, forKey: .writers)
        try container.encode(records, forKey: .records)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(recordsPerSecond, forKey: .recordsPerSecond)
        try container.encode(syncs, forKey: .syncs)
        try container.encode(recordsPerSync, forKey: .recordsPerSync)
        try container.encode(durability, forKey: .durability)
    }

    var text: String {
        let perSync = recordsPerSync.map { "\(plural(syncs, "fsync")), \($0) records per sync" }
            ?? "no fsync (durability none: not crash-safe)"
        return """
            \(plural(records, "record")) from \(plural(writers, "writer")) in \(String(format: "%.3f", seconds)) s: \
            \(Int(recordsPerSecond)) records/s
            \(perSync)
            """
    }
}
