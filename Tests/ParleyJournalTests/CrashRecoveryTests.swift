import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySubprocess
import ParleyTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGKILLs a real `parley-crash-child` process at random moments and checks
/// that its journals hold everything it claimed before dying (Docs/Protocol.md
/// invariants 1 and 2): every signature it sent and every commit it reported.
///
/// Randomized: the seed is printed; replay with `PARLEY_CRASH_SEED=<seed>`.
@Suite struct CrashRecoveryTests {
    static let iterations = 30
    /// Later iterations are skipped past this, so the test stays well under a minute on 2
    /// cores with both backends' runs side by side.
    static let budget: Duration = .seconds(30)
    static let readyTimeout: Duration = .seconds(20)
    static let killDelayMilliseconds: ClosedRange<UInt64> = 20...300
    /// Small enough that most runs compact at least once, so some kills land mid-compaction.
    static let segmentSizes = [16 << 10, 64 << 10, Journal.defaultMaxSegmentBytes]

    @Test(arguments: ChannelBackendID.allCases)
    func killedNodeRecoversEverySignatureSentAndEveryCommitReported(backend: ChannelBackendID) async throws {
        // Up to `budget` of waiting on child processes: on a thread of its own, not the pool's.
        let (seed, completed, finalVersion) = try await offPool { try Self.killAndRecoverRepeatedly(backend: backend) }
        #expect(completed >= 8, "only \(completed) iterations fit in the time budget (seed \(seed), \(backend))")
        #expect(
            finalVersion >= UInt64(2 * completed),
            "hardly any progress across \(completed) restarts: version \(finalVersion) (seed \(seed))")
    }

    /// The kill-and-recover loop; returns the seed, the iterations completed and the lower
    /// of the two sides' final versions. Failures inside it are thrown, not `#expect`ed
    /// (it runs on a plain thread, outside the test's task).
    private static func killAndRecoverRepeatedly(backend: ChannelBackendID) throws -> (seed: UInt64, completed: Int, finalVersion: UInt64) {
        let seed = ProcessInfo.processInfo.environment["PARLEY_CRASH_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("CrashRecoveryTests seed \(seed) (replay with PARLEY_CRASH_SEED=\(seed))")
        var random = SeededRandom(seed: seed)
        let parley = try ParleyExecutable.require(named: "parley-crash-child")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-crash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let clock = ContinuousClock()
        let start = clock.now
        var previous = RecoveredSides.none
        var completed = 0
        var tornTails = 0
        var injected = 0
        for iteration in 1...Self.iterations {
            guard clock.now - start < Self.budget else { break }
            let childSeed = random.next()
            let segmentBytes = Self.segmentSizes[Int(random.next(upperBound: UInt64(Self.segmentSizes.count)))]
            let delay = Self.killDelayMilliseconds.lowerBound
                + random.next(upperBound: UInt64(Self.killDelayMilliseconds.count))
            let context = "\(backend) backend, seed \(seed), iteration \(iteration) (child --seed \(childSeed) "
                + "--max-segment-bytes \(segmentBytes), killed \(delay) ms after READY)"
            let lines = try CrashChild.runAndKill(
                parley, arguments: [
                    "--dir", directory, "--seed", String(childSeed),
                    "--max-segment-bytes", String(segmentBytes), "--backend", backend.description,
                ], afterReadyMilliseconds: delay, readyTimeout: Self.readyTimeout, context: context)
            let claims = try ChildClaims(lines, context: context)
            // SIGKILL never tears a write(2), so a third of the time also leave what a power cut
            // mid-write would: the first part of a record at the end of one journal.
            let torn = random.next(upperBound: UInt64(3)) == 0 ? ["alice", "bob"][Int(random.next(upperBound: UInt64(2)))] : nil
            // A record's first bytes can all be zero (a length of 256 starts with a zero
            // byte): such a tail is padding (Docs/Journal.md, "Preallocation"), not torn.
            var tornWithData: String?
            if let torn, try TornTail.append(to: directory + "/" + torn, using: &random) { tornWithData = torn }
            let recovered = try RecoveredSides.open(
                directory, claims: claims, previous: previous, tornSide: tornWithData,
                context: context + (torn.map { ", torn tail added to \($0)" } ?? ""))
            previous = recovered
            tornTails += recovered.tornTails
            if tornWithData != nil { injected += 1 }
            completed += 1
        }

        print("CrashRecoveryTests: \(completed) kills in \(clock.now - start), "
            + "\(tornTails) torn tails truncated (\(injected) added by the test); "
            + "alice at version \(previous.alice?.latest.version ?? 0), bob at \(previous.bob?.latest.version ?? 0)")
        return (seed, completed, min(previous.alice?.latest.version ?? 0, previous.bob?.latest.version ?? 0))
    }
}

// MARK: - What the child claimed

/// Per side, the highest version the child said it sent a signature on and the highest it reported committed.
private struct ChildClaims {
    var maxSent: [String: UInt64] = [:]
    var maxCommitted: [String: UInt64] = [:]

    init(_ lines: [String], context: String) throws {
        guard lines.contains("READY") else {
            throw CrashTestFailure("\(context): the child never printed READY; output: \(lines.suffix(10))")
        }
        for line in lines where line != "READY" {
            let fields = line.split(separator: " ")
            guard fields.count == 3, ["alice", "bob"].contains(fields[1]), let version = UInt64(fields[2]) else {
                throw CrashTestFailure("\(context): unexpected child output line \(line.debugDescription)")
            }
            let side = String(fields[1])
            switch fields[0] {
            case "SENT": maxSent[side] = max(maxSent[side] ?? 0, version)
            case "COMMITTED": maxCommitted[side] = max(maxCommitted[side] ?? 0, version)
            default: throw CrashTestFailure("\(context): unexpected child output line \(line.debugDescription)")
            }
        }
    }
}

// MARK: - What the journals recovered

private struct RecoveredSides {
    var alice: ChannelRecord?
    var bob: ChannelRecord?
    /// Journals whose reopening found and removed a torn record.
    var tornTails = 0

    static let none = RecoveredSides()

    /// Opens both journals (running recovery, which truncates a torn tail), checks them against the claims, closes them.
    static func open(
        _ directory: String, claims: ChildClaims, previous: RecoveredSides, tornSide: String?, context: String
    ) throws -> RecoveredSides {
        var recovered = RecoveredSides()
        for side in ["alice", "bob"] {
            let (record, torn) = try recover(directory + "/" + side, side: side, claims: claims, context: context)
            if torn { recovered.tornTails += 1 }
            if side == tornSide { try #require(torn, "\(context): recovery did not report the torn tail it should have removed") }
            let before = side == "alice" ? previous.alice : previous.bob
            try #require(
                record.latest.version >= (before?.latest.version ?? 0),
                "\(context): \(side)'s recovered committed version went back from \(before?.latest.version ?? 0) to \(record.latest.version)")
            if side == "alice" { recovered.alice = record } else { recovered.bob = record }
        }
        if let alice = recovered.alice, let bob = recovered.bob {
            try #require(alice.channelID == bob.channelID, "\(context): alice and bob recovered different channels")
            if alice.latest.version == bob.latest.version {
                try #require(
                    alice.latest.state == bob.latest.state,
                    "\(context): two different committed states of version \(alice.latest.version)")
            }
        }
        return recovered
    }

    /// The one channel the journal at `path` recovered, and whether recovery truncated a torn tail.
    private static func recover(
        _ path: String, side: String, claims: ChildClaims, context: String
    ) throws -> (ChannelRecord, tornTail: Bool) {
        // Read-only, so it sees the journal exactly as the crash left it, torn tail included.
        let report = JournalVerifier.verify(directory: path)
        let violation = "\(report.violation.map(String.init(describing:)) ?? "") "
            + "at \(report.location.map(String.init(describing:)) ?? "?")"
        try #require(report.ok, "\(context): JournalVerifier on \(side)'s journal: \(violation)")
        let journal: Journal
        do { journal = try Journal(directory: path, durability: .fsync) } catch {
            throw CrashTestFailure("\(context): reopening \(side)'s journal failed instead of recovering: \(error)")
        }
        defer { journal.close() }
        let channels = journal.recovery.channels
        guard channels.count == 1, let record = channels.values.first else {
            throw CrashTestFailure("\(context): \(side)'s journal recovered \(channels.count) channels, expected 1")
        }
        let committed = claims.maxCommitted[side] ?? 0
        let sent = claims.maxSent[side] ?? 0
        let signed = max(record.highestSignedVersion, record.pending?.version ?? 0)
        try #require(
            record.latest.version >= committed,
            "\(context): \(side) reported version \(committed) committed, but its journal recovered only \(record.latest.version)")
        try #require(
            signed >= sent,
            "\(context): \(side) sent a signature on version \(sent), but its journal's highest signed version is \(signed)")
        try #require(
            record.latest.isFullySigned,
            "\(context): \(side)'s latest state (version \(record.latest.version)) is not fully signed")
        do { try record.latest.verify(against: record.params) } catch {
            throw CrashTestFailure("\(context): \(side)'s latest state (version \(record.latest.version)) fails verification: \(error)")
        }
        return (record, journal.recovery.truncatedTail)
    }
}

/// The start of a record whose write was cut short, as a crash mid-append leaves it.
private enum TornTail {
    /// Returns false when the bytes written are all zeros (padding, not a torn tail).
    static func append(to journal: String, using random: inout SeededRandom) throws -> Bool {
        let names = try FileManager.default.contentsOfDirectory(atPath: journal)
        guard let last = names.compactMap(SegmentFormat.index(ofFileName:)).max() else {
            throw CrashTestFailure("\(journal) holds no segment to tear")
        }
        let length = 64 + Int(random.next(upperBound: UInt64(256)))
        let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
        var frame: [UInt8] = []
        SegmentFormat.frame(payload, into: &frame)
        let kept = 1 + Int(random.next(upperBound: UInt64(frame.count - 1)))
        let segment = URL(fileURLWithPath: journal + "/" + SegmentFormat.fileName(index: last))
        let handle = try FileHandle(forWritingTo: segment)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: frame.prefix(kept))
        return frame.prefix(kept).contains { $0 != 0 }
    }
}

// MARK: - Running and killing the child

private struct CrashTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private enum CrashChild {
    /// Starts `parley-crash-child arguments…`, waits for READY plus `delay` ms, SIGKILLs it and returns every line it printed.
    static func runAndKill(
        _ executable: String, arguments: [String], afterReadyMilliseconds delay: UInt64, readyTimeout: Duration,
        context: String
    ) throws -> [String] {
        // Only the child holds the write ends, so end of file arrives when it dies.
        let process = try SpawnedProcess(
            executable: executable, arguments: arguments, standardOutput: .pipe, standardError: .pipe)
        guard let stdout = process.standardOutput, let stderr = process.standardError else {
            throw CrashTestFailure("\(context): the child's pipes are missing")
        }
        let out = PipeText(stdout)
        let err = PipeText(stderr)

        let readyDeadline = Date(timeIntervalSinceNow: Double(readyTimeout.components.seconds))
        guard out.wait(until: readyDeadline, for: { $0.contains("READY") }) else {
            process.signal(SIGKILL)
            let ended = process.waitUntilExit()
            _ = err.waitForEnd(before: Date(timeIntervalSinceNow: 2))
            throw CrashTestFailure(
                "\(context): the child did not print READY within \(readyTimeout) "
                    + "(\(ended)); stderr:\n\(err.text)\nstdout tail: \(out.lines.suffix(5))")
        }
        usleep(useconds_t(delay * 1000))
        process.signal(SIGKILL)
        let ended = process.waitUntilExit()
        guard out.waitForEnd(before: Date(timeIntervalSinceNow: 10)) else {
            throw CrashTestFailure("\(context): the child's stdout never reached end of file after SIGKILL")
        }
        _ = err.waitForEnd(before: Date(timeIntervalSinceNow: 2))
        guard ended == .signalled(SIGKILL) else {
            throw CrashTestFailure(
                "\(context): the child exited by itself (\(ended)) before the kill; stderr:\n\(err.text)")
        }
        return out.lines
    }
}

