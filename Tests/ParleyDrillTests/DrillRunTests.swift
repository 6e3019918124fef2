import Foundation
import ParleyDrill
import ParleyTestSupport
import Testing

/// Runs the drill library with real processes (a devchain and one `parley node` per peer),
/// and drills that must fail.
@Suite("drill runs", .serialized)
struct DrillRunTests {
    func runner() throws -> DrillRunner {
        DrillRunner(executable: try ParleyExecutable.require(), seed: 1)
    }

    @Test("every drill in Examples/Drills passes", arguments: try DrillLibrary.files().map { URL(fileURLWithPath: $0).lastPathComponent })
    func library(file: String) async throws {
        let path = DrillLibrary.directory + "/" + file
        let drill = try DrillParser.parse(try String(contentsOfFile: path, encoding: .utf8), path: path)
        let result = await try runner().run(drill)
        #expect(result.passed, "\(result.text)")
    }

    /// The same drills on the local EVM: `parley node --chain http://… --adjudicator …`
    /// children settling Ethereum-backend channels through the Vyper adjudicator.
    @Test(
        "every drill in Examples/Drills passes on the local EVM", .enabled(if: EVMFixture.isAvailable, "needs the local EVM: make evm-env"),
        arguments: try DrillLibrary.files().map { URL(fileURLWithPath: $0).lastPathComponent })
    func libraryOnTheLocalEVM(file: String) async throws {
        let path = DrillLibrary.directory + "/" + file
        let drill = try DrillParser.parse(try String(contentsOfFile: path, encoding: .utf8), path: path)
        var runner = try runner()
        runner.chain = .evm
        // Watchers and the chain poll every 20 ms over JSON-RPC here, and the local EVM
        // executes in Python: give expectations more time than on the devchain.
        runner.settleTimeout = .seconds(30)
        let result = await runner.run(drill)
        #expect(result.passed, "\(result.text)")
    }

    @Test("an expectation that does not hold fails the drill at its line")
    func wrongExpectation() async throws {
        let drill = try DrillParser.parse("""
            name: wrong-payout
            challenge: 60
            peers: {alice: 100, bob: 100}
            steps:
              - pay: {from: alice, amount: 10}
              - close
              - expect: {payout: {alice: 100, bob: 100}}
              - pay: {from: alice, amount: 1}
            """, path: "wrong-payout.yaml")
        var runner = try runner()
        runner.settleTimeout = .seconds(2)
        let result = await runner.run(drill)
        #expect(!result.passed)
        let failed = result.steps.filter { !$0.ok }
        #expect(failed.count == 1)
        #expect(failed.first?.line == 7)
        #expect(failed.first?.detail.contains("alice is paid 90, expected 100") == true, "\(failed)")
        #expect(result.steps.count == 3, "steps after a failed expectation do not run")
    }

    @Test("a refused step fails the drill unless the next step expects it")
    func unexpectedRefusal() async throws {
        let drill = try DrillParser.parse("""
            name: overspend
            challenge: 60
            peers: {alice: 10, bob: 10}
            steps:
              - pay: {from: alice, amount: 50}
              - close
            """, path: "overspend.yaml")
        let result = await try runner().run(drill)
        #expect(!result.passed)
        #expect(result.steps.first?.ok == false)
        #expect(result.steps.first?.detail.contains("only 10 available") == true, "\(result.steps)")
        #expect(result.steps.count == 1, "nothing runs after an unexpected refusal")
    }

    @Test("`parley drill` exits non-zero with the file and line for a malformed file")
    func malformedFile() async throws {
        let path = NSTemporaryDirectory() + "/parley-bad-drill-\(UUID().uuidString).yaml"
        try "name: bad\nchallenge: 60\npeers: {a: 1, b: 1}\nsteps:\n  - dance: a\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try await DevchainDaemon.run(["drill", path], timeout: 30)
        #expect(run.status != 0)
        #expect(run.stderr.contains("\(path):5: unknown step `dance`"), "\(run.stderr)")
    }

    @Test("--json and --report describe the run")
    func jsonAndReport() async throws {
        let report = NSTemporaryDirectory() + "/parley-drill-report-\(UUID().uuidString).html"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let run = try await DevchainDaemon.run(
            ["drill", DrillLibrary.directory + "/stale-state-cheat.yaml", "--json", "--report", report], timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        let parsed = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]]
        let drill = try #require(parsed?.first)
        #expect(drill["name"] as? String == "stale-state-cheat")
        #expect(drill["passed"] as? Bool == true)
        let steps = try #require(drill["steps"] as? [[String: Any]])
        #expect(steps.count == 8)
        #expect(steps.allSatisfy { $0["ok"] as? Bool == true && $0["step"] is String && $0["detail"] is String })
        let html = try String(contentsOfFile: report, encoding: .utf8)
        #expect(html.contains("<svg"))
        #expect(html.contains("refuted stale version 3 with version 5"))
    }
}
