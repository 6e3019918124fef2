import ArgumentParser
import Foundation
import ParleySim
import ParleyLocks
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

    @Option(name: .long, help: "Worker processes for campaigns longer than one chunk of \(SimCommand.chunk) seeds.")
    var jobs: Int = 1

    @Flag(name: .long, help: .hidden)
    var selfTest = false

    /// Seeds per child process (tests use small chunks).
    @Option(name: .long, help: .hidden)
    var chunk: Int = SimCommand.chunk

    /// Seeds one process runs. Longer campaigns run as a series of child processes (`--jobs`
    /// at a time): a process that ran thousands of schedules holds memory the finished ones
    /// left behind, and a crash then costs one chunk, not the campaign.
    static let chunk = 2_000

    func validate() throws {
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if let minutes, !(minutes > 0) { throw ValidationError("--minutes must be positive") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if chunk < 1 { throw ValidationError("--chunk must be at least 1") }
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
        let count = seeds ?? (minutes == nil ? 100 : nil)
        if !selfTest, (count ?? Int.max) > chunk || jobs > 1 {
            let report = try await coordinate(count: count)
            try finish(report)
            return
        }
        var shape = SimulationConfig()
        shape.steps = steps
        let config = shape
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
                        let line = "\(Reporting.plural(progress.schedules, "schedule")) in \(Int(progress.elapsed)) s (seed \(progress.lastSeed))"
                        Terminal.writeError(interactive ? "\r\u{1B}[K" + line : line + "\n")
                    }
                }
                if interactive { Terminal.writeError("\r\u{1B}[K") }
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
        try finish(report)
    }

    /// Prints the report and sets the exit status.
    private func finish(_ report: Campaign.Report) throws {
        if json {
            try printJSON(report)
        } else {
            print(Self.text(report, trace: trace))
        }
        if report.failure != nil { throw ExitCode.failure }
        if requireCoverage, !report.unreachedMoves.isEmpty || !report.unreachedNodePaths.isEmpty {
            throw failure(
                "sim",
                "coverage: no schedule reached \((report.unreachedMoves + report.unreachedNodePaths).joined(separator: ", "))")
        }
    }

    /// Runs the campaign as child `parley sim` processes over consecutive chunks of seeds,
    /// `jobs` at a time, and merges their reports. Stops at the first failing chunk.
    private func coordinate(count: Int?) async throws -> Campaign.Report {
        let start = Date()
        var total = Campaign.Report(firstSeed: seed)
        var next = seed
        var left = count
        var running: [(first: UInt64, seeds: Int, child: ChunkChild)] = []
        var lastShown = Date.distantPast
        let interactive = isatty(STDERR_FILENO) == 1
        func timeIsUp() -> Bool { minutes.map { Date().timeIntervalSince(start) >= $0 * 60 } ?? false }
        while true {
            while running.count < jobs, total.failure == nil, !timeIsUp(), left.map({ $0 > 0 }) ?? true {
                let seeds = min(left ?? chunk, chunk)
                var arguments = ["sim", "--seed", "\(next)", "--seeds", "\(seeds)", "--steps", "\(steps)", "--json"]
                if let minutes {
                    // A chunk started near the end stops with the campaign, not 2,000 seeds later.
                    arguments += ["--minutes", "\(max(minutes - Date().timeIntervalSince(start) / 60, 0.01))"]
                }
                running.append((next, seeds, try ChunkChild(arguments: arguments)))
                next &+= UInt64(seeds)
                left = left.map { $0 - seeds }
            }
            guard !running.isEmpty else { break }
            try await Task.sleep(for: .milliseconds(200))
            for (index, chunk) in running.enumerated().reversed() {
                guard let (termination, output) = chunk.child.result else { continue }
                running.remove(at: index)
                if let part = try? JSONDecoder().decode(Campaign.Report.self, from: output) {
                    Campaign.merge(part, into: &total)
                } else {
                    // A chunk that died without a report: the seeds it ran are unknown.
                    total.failure = total.failure
                        ?? "the simulator process for seeds \(chunk.first)…\(chunk.first &+ UInt64(chunk.seeds) - 1) ended with "
                        + "\(termination) and no report; replay: parley sim --seed \(chunk.first) --seeds \(chunk.seeds)"
                }
            }
            if Date().timeIntervalSince(lastShown) >= 1 {
                lastShown = Date()
                let line = "\(Reporting.plural(total.schedules, "schedule")) in \(Int(Date().timeIntervalSince(start))) s, \(running.count) running"
                Terminal.writeError(interactive ? "\r\u{1B}[K" + line : line + "\n")
            }
        }
        if interactive { Terminal.writeError("\r\u{1B}[K") }
        total.wallSeconds = Date().timeIntervalSince(start)
        Campaign.noteCoverageGaps(in: &total)
        return total
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
            out += "FAILED at seed \(seed) after \(Reporting.plural(report.schedules, "schedule")): \(failure)\n"
            out += "replay: parley sim --seed \(seed) --seeds 1 --trace\n\n"
            if let story = report.trace { out += story + "\n" }
        } else if let failure = report.failure {
            out += "FAILED: \(failure)\n"
        } else {
            out += "passed: \(Reporting.plural(report.schedules, "schedule")) from seed \(report.firstSeed)\n"
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

/// One `parley sim` child of a long campaign: its standard output read to the end on a
/// thread of its own (a failing chunk's trace is larger than a pipe holds).
private final class ChunkChild: @unchecked Sendable {
    private let process: SpawnedProcess
    private let output = Locked<Data?>(nil)

    init(arguments: [String]) throws {
        process = try SpawnedProcess(
            executable: "/proc/self/exe", arguments: arguments, standardOutput: .pipe, standardError: .null)
        guard let handle = process.standardOutput else { throw ExitCode.failure }
        let output = self.output
        let reader = Thread {
            let data = handle.readDataToEndOfFile()  // outside the lock: `result` polls it
            output.withLock { $0 = data }
        }
        reader.name = "parley-sim-chunk"
        reader.start()
    }

    /// How it ended and what it printed, once it has ended and its output is read.
    var result: (SpawnedProcess.Termination, Data)? {
        guard let data = output.withLock({ $0 }), let termination = process.termination else { return nil }
        return (termination, data)
    }
}
