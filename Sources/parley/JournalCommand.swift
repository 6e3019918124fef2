import ArgumentParser
import Foundation
import ParleyBench
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
            print("journal \(directory): \(Reporting.plural(journal.records, "record")) in \(Reporting.plural(journal.segments, "segment")), "
                + Reporting.plural(journal.channels.count, "channel"))
            if journal.truncatedTail { print("torn tail present: it will be removed when a node next opens this journal") }
            for summary in journal.channels {
                print("")
                print(summary.text)
            }
        }
    }
}

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
                print("ok: \(Reporting.plural(report.records, "record")), \(Reporting.plural(report.channels, "channel")), "
                    + Reporting.plural(report.segments, "segment"))
                if report.truncatedTail {
                    print("torn tail present: it will be removed when a node next opens this journal")
                }
            }
            if !report.ok { throw ExitCode(1) }
        }
    }
}

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
            let result: JournalBenchResult
            do {
                let workload = try await JournalBenchWorkload.make(writers: writers, records: records)
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
