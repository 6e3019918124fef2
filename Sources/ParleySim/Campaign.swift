import Foundation

/// Many seeds, one after another, with one report: what `parley sim` runs.
///
/// Runs on the calling thread with ``SimScheduler`` installed for the whole campaign, so
/// call it from a thread of its own, in a process doing nothing else (the scheduler's hook
/// is process-wide), started with `SWIFT_DETERMINISTIC_HASHING=1` (dictionary order is
/// otherwise seeded per process and a replay could differ).
public enum Campaign {
    /// What a campaign found.
    public struct Report: Codable, Sendable {
        public var firstSeed: UInt64
        public var schedules = 0
        public var steps = 0
        public var jobs = 0
        public var virtualSeconds = 0.0
        public var wallSeconds = 0.0
        /// Faults injected, by kind (crash, restart, chain outage, partition, lost and duplicated messages).
        public var faults: [String: Int] = [:]
        /// Mallory's moves and the honest user's actions, by kind.
        public var moves: [String: Int] = [:]
        /// What the honest node reported, by event kind.
        public var nodePaths: [String: Int] = [:]
        /// Move kinds Mallory has but no schedule of this campaign made.
        public var unreachedMoves: [String] = []
        /// Node event kinds no schedule reached.
        public var unreachedNodePaths: [String] = []
        public var failingSeed: UInt64?
        public var failure: String?
        /// The failing run's story, lane by lane (only with a failure).
        public var trace: String?

        public init(firstSeed: UInt64) {
            self.firstSeed = firstSeed
        }
    }

    /// Progress after each schedule.
    public struct Progress: Sendable {
        public var schedules: Int
        public var elapsed: Double
        public var lastSeed: UInt64
    }

    /// Every node event kind a run can report (for `unreachedNodePaths`).
    static let nodePathKinds = [
        "opened", "funded", "proposed", "committed-mine", "committed-theirs", "rejected-by-peer", "rejected-peer's",
        "peer-connected", "peer-disconnected", "peer-silent", "registered", "refuted", "exit-started", "concluded",
        "withdrawn", "closed", "error",
    ]

    /// Runs seeds `first`, `first + 1`, … until `count` schedules ran, `minutes` passed, or
    /// a seed fails (a failure stops the campaign: its seed and trace are the result).
    public static func run(
        first: UInt64, count: Int?, minutes: Double?, config: SimulationConfig = SimulationConfig(),
        keepLastTrace: Bool = false, progress: (Progress) -> Void = { _ in }
    ) throws -> Report {
        let scheduler = try SimScheduler.install()
        defer { _ = scheduler.uninstall() }
        let start = Date()
        var report = Report(firstSeed: first)
        var seed = first
        while true {
            if let count, report.schedules >= count { break }
            let elapsed = Date().timeIntervalSince(start)
            if let minutes, elapsed >= minutes * 60 { break }
            if count == nil && minutes == nil { break }
            let result = try Simulation(seed: seed, config: config, scheduler: scheduler).run()
            report.schedules += 1
            report.steps += result.steps
            report.virtualSeconds += Double(result.virtualTime.components.seconds)
            for (key, value) in result.moves {
                if key.hasPrefix("fault.") || key.hasPrefix("network.") {
                    report.faults[key, default: 0] += value
                } else {
                    report.moves[key, default: 0] += value
                }
            }
            for (key, value) in result.nodePaths { report.nodePaths[key, default: 0] += value }
            progress(Progress(schedules: report.schedules, elapsed: Date().timeIntervalSince(start), lastSeed: seed))
            if let failure = result.failure {
                report.failingSeed = seed
                report.failure = failure
                report.trace = result.trace.rendered()
                break
            }
            if keepLastTrace { report.trace = result.trace.rendered() }
            seed &+= 1
        }
        report.jobs = scheduler.jobsRun
        report.wallSeconds = Date().timeIntervalSince(start)
        noteCoverageGaps(in: &report)
        return report
    }

    /// Fills `unreachedMoves` and `unreachedNodePaths` from the counts.
    public static func noteCoverageGaps(in report: inout Report) {
        report.unreachedMoves = Mallory.Move.allCases.map { "mallory." + $0.rawValue }
            .filter { report.moves[$0, default: 0] == 0 }
        report.unreachedNodePaths = nodePathKinds.filter { report.nodePaths[$0, default: 0] == 0 }
    }

    /// Adds `part` (a campaign over later seeds) to `total`; its failure, if `total` has none yet.
    public static func merge(_ part: Report, into total: inout Report) {
        total.schedules += part.schedules
        total.steps += part.steps
        total.jobs += part.jobs
        total.virtualSeconds += part.virtualSeconds
        for (key, value) in part.faults { total.faults[key, default: 0] += value }
        for (key, value) in part.moves { total.moves[key, default: 0] += value }
        for (key, value) in part.nodePaths { total.nodePaths[key, default: 0] += value }
        if total.failure == nil, let failure = part.failure {
            total.failure = failure
            total.failingSeed = part.failingSeed
            total.trace = part.trace
        }
    }
}
