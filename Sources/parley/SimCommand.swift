import ArgumentParser
import Foundation
import ParleySim
import ParleySubprocess

struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run the whole node against a Byzantine peer in a deterministic simulation.",
        discussion: """
            Each schedule runs the real node (engine, journal, watcher, timers) against \
            Mallory, an adversary who may send any state she can sign, withhold, replay, \
            decline after countersigning, lie at reestablish, disconnect, and act on chain \
            with anything she holds, while the simulator crashes the node (losing unsynced \
            writes, tearing the last one), cuts the chain endpoint and partitions the \
            network. Everything runs on one thread in virtual time, so a seed replays \
            exactly. After every step and at the end an oracle checks that the node never \
            signs two states at one version, keeps every commitment across crashes, gets \
            at least what it committed to, and gets its money out within the challenge \
            window plus its own timeouts. Docs/Simulation.md explains all of it.

            Exit status 0 when every schedule passed; 1 with the failing seed and its \
            trace otherwise.

            Examples:
              parley sim --seeds 1000
              parley sim --seed 4711 --seeds 1 --trace
              parley sim --minutes 30 --json
            """)

    @Option(name: .long, help: "How many schedules to run (default 100 unless --minutes is given).")
    var seeds: Int?

    @Option(name: .long, help: "The first seed; later schedules use the seeds after it.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Stop after this many minutes (with --seeds: whichever comes first).")
    var minutes: Double?

    @Option(name: .long, help: "Adversarial steps per schedule before the liveness phase.")
    var steps: Int = SimulationConfig().steps

    @Flag(name: .long, help: "Print the trace of the last schedule even when it passed (use with --seeds 1).")
    var trace = false

    @Flag(name: .long, help: "Print the report as one JSON object instead of text.")
    var json = false

    @Flag(name: .long, help: "Also fail when some move of Mallory's or some node event kind was reached by no schedule.")
    var requireCoverage = false

    @Flag(name: .long, help: .hidden)
    var selfTest = false

    func validate() throws {
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if let minutes, !(minutes > 0) { throw ValidationError("--minutes must be positive") }
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
    }

    func run() async throws {
        // Dictionary and set order is seeded per process unless this is set: a replay of a
        // seed must iterate them the same way, so the command restarts itself with it.
        if ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil {
            setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
            let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
            execv("/proc/self/exe", arguments)
            throw failure("sim", "cannot restart with deterministic hashing: \(String(cString: strerror(errno)))")
        }
        var shape = SimulationConfig()
        shape.steps = steps
        let config = shape
        let count = seeds ?? (minutes == nil ? 100 : nil)
        let (first, minutes, json, printTrace, selfTest) = (seed, self.minutes, self.json, trace, self.selfTest)
        let interactive = isatty(STDERR_FILENO) == 1
        // The simulation owns a thread of its own: its scheduler runs every job of the
        // process there while it is installed, so nothing else may be running meanwhile.
        let outcome: Result<Campaign.Report, any Error> = await withCheckedContinuation { continuation in
            let thread = Thread {
                if selfTest {
                    continuation.resume(returning: Result { try Self.selfTestReport() })
                    return
                }
                var lastShown = Date.distantPast
                let result = Result {
                    try Campaign.run(
                        first: first, count: count, minutes: minutes, config: config, keepLastTrace: printTrace
                    ) { progress in
                        guard Date().timeIntervalSince(lastShown) >= 1 else { return }
                        lastShown = Date()
                        let line = "\(plural(progress.schedules, "schedule")) in \(Int(progress.elapsed)) s (seed \(progress.lastSeed))"
                        writeToStandardError(interactive ? "\r\u{1B}[K" + line : line + "\n")
                    }
                }
                if interactive { writeToStandardError("\r\u{1B}[K") }
                continuation.resume(returning: result)
            }
            thread.name = "parley-sim"
            thread.stackSize = 64 << 20
            thread.start()
        }
        let report: Campaign.Report
        switch outcome {
        case let .success(value): report = value
        case let .failure(error): throw failure("sim", "\(error)")
        }
        if json {
            try printJSON(report)
        } else {
            print(Self.text(report, trace: printTrace))
        }
        if report.failure != nil { throw ExitCode.failure }
        if requireCoverage, !report.unreachedMoves.isEmpty || !report.unreachedNodePaths.isEmpty {
            throw failure(
                "sim",
                "coverage: no schedule reached \((report.unreachedMoves + report.unreachedNodePaths).joined(separator: ", "))")
        }
    }

    /// The scheduler's own check: a workload replayed many times gives one trace.
    static func selfTestReport() throws -> Campaign.Report {
        let verdict = try SimSelfTest.verify(seed: 1, runs: 50)
        var report = Campaign.Report(firstSeed: 1)
        report.schedules = verdict.runs
        if verdict.mismatchingRuns > 0 || verdict.divergence != nil {
            report.failure = "determinism: \(verdict)"
        }
        return report
    }

    static func text(_ report: Campaign.Report, trace: Bool) -> String {
        var out = ""
        if let seed = report.failingSeed, let failure = report.failure {
            out += "FAILED at seed \(seed) after \(plural(report.schedules, "schedule")): \(failure)\n"
            out += "replay: parley sim --seed \(seed) --seeds 1 --trace\n\n"
            if let story = report.trace { out += story + "\n" }
        } else if let failure = report.failure {
            out += "FAILED: \(failure)\n"
        } else {
            out += "passed: \(plural(report.schedules, "schedule")) from seed \(report.firstSeed)\n"
        }
        out += String(
            format: "%d steps, %d jobs, %.0f virtual s in %.1f wall s\n", report.steps, report.jobs, report.virtualSeconds,
            report.wallSeconds)
        func table(_ title: String, _ counts: [String: Int]) {
            guard !counts.isEmpty else { return }
            out += title + ":\n"
            for (key, value) in counts.sorted(by: { $0.key < $1.key }) { out += "  \(key): \(value)\n" }
        }
        table("faults injected", report.faults)
        table("moves", report.moves)
        table("node paths reached", report.nodePaths)
        if !report.unreachedMoves.isEmpty { out += "moves no schedule reached: \(report.unreachedMoves.joined(separator: ", "))\n" }
        if !report.unreachedNodePaths.isEmpty {
            out += "node paths no schedule reached: \(report.unreachedNodePaths.joined(separator: ", "))\n"
        }
        if trace, report.failure == nil, let story = report.trace { out += "\n" + story }
        return out
    }
}
