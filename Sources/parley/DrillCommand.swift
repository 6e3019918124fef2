import ArgumentParser
import Foundation
import ParleyDrill
import ParleySubprocess

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Rehearse the bad day: run scripted dispute drills and judge them.",
        discussion: """
            Each drill file (YAML, format in Docs/Drills.md) names two peers with their \
            deposits, a challenge window and a list of steps: payments, keeping an old \
            state, registering it, silence, disconnects, SIGKILL crashes and restarts, \
            tampered updates, chain time passing, and expectations about the chain, the \
            payouts and each peer's view.

            Every peer is a real `parley node` process on loopback TCP; both share one \
            `parley devchain` with manual time. Keys come from --seed, so a run repeats. The \
            watchers act by themselves (refute, exit, conclude, withdraw); the runner waits \
            for them before judging each expectation.

            Exit status 0 only if every expectation of every drill held. A file that cannot \
            be read stops everything before anything runs, with its line number.

            Examples:
              parley drill Examples/Drills/*.yaml
              parley drill Examples/Drills/stale-state-cheat.yaml \\
                --report /tmp/drills.html
              parley drill my-drill.yaml --json --seed 7
              parley drill --chain evm Examples/Drills/*.yaml   (the local EVM: `make evm-env` first)
            """)

    @Argument(help: "Drill files (YAML).")
    var files: [String]

    @Flag(name: .long, help: #"Print [{"name", "passed", "steps": [{"step", "line", "ok", "detail"}], "path", "seed"}] as JSON instead of the timeline."#)
    var json = false

    @Option(name: .long, help: "Write a self-contained HTML page with a sequence diagram per drill.")
    var report: String?

    @Option(name: .long, help: "Seed for the peers' keys (same seed, same keys).")
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Keep each run's journals, keys and chain data (the directory is printed).")
    var keep = false

    @Option(
        name: .long,
        help: "devchain (a `parley devchain` child), or evm: the local EVM with Parley's Vyper adjudicator, deployed and funded by the runner; the peers open Ethereum-backend channels.")
    var chain: DrillChainChoice = .devchain

    func run() async throws {
        var drills: [Drill] = []
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw failure("drill", "cannot read \(path)")
            }
            do { drills.append(try DrillParser.parse(String(decoding: data, as: UTF8.self), path: path)) } catch {
                throw failure("drill", error.description)
            }
        }
        let executable: String
        do { executable = try currentExecutable() } catch { throw failure("drill", "\(error)") }
        var runner = DrillRunner(executable: executable, seed: seed)
        runner.keepFiles = keep
        runner.chain = chain == .evm ? .evm : .devchain
        let showProgress = !json && isatty(STDERR_FILENO) != 0
        runner.onEntry = { entry in
            guard showProgress else { return }
            let who = entry.to.map { "\(entry.from) → \($0)" } ?? entry.from
            Terminal.writeError(String("\r\u{1B}[2K  t=\(entry.time) \(who): \(entry.text)".prefix(150)))
        }
        var results: [DrillResult] = []
        for drill in drills {
            let result = await runner.run(drill)
            if showProgress { Terminal.writeError("\r\u{1B}[2K") }
            if !json { print(result.text) }
            results.append(result)
        }
        if let report {
            do {
                try createParentDirectories(of: report)
                try DrillHTML.page(results).write(toFile: report, atomically: true, encoding: .utf8)
            } catch {
                throw failure("drill", "cannot write \(report): \(error)")
            }
            if !json { print("report: \(report)") }
        }
        if json { try printJSON(results) }
        let failed = results.filter { !$0.passed }
        if !json { print("\(results.count - failed.count) of \(Reporting.plural(results.count, "drill")) passed") }
        if !failed.isEmpty { throw ExitCode.failure }
    }

    /// This very binary, so the children run the same build.
    private func currentExecutable() throws -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationError("cannot find the parley executable (\(path))")
        }
        return path
    }
}

enum DrillChainChoice: String, ExpressibleByArgument, CaseIterable {
    case devchain
    case evm
}
