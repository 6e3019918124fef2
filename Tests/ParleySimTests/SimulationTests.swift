import Foundation
import ParleyTestSupport
import Testing

/// The simulator runs in a `parley sim` process of its own: its scheduler takes over every
/// Swift-concurrency job of the process, which the test runner's other tests must not see.
@Suite(.serialized) struct SimulationTests {
    /// A batch through the debug build (the large batch runs from the release build in
    /// `make test`, after the test suite): every schedule must pass the oracle.
    static let batchSeeds = 200

    struct Report: Decodable {
        let schedules: Int
        let steps: Int
        let faults: [String: Int]
        let moves: [String: Int]
        let nodePaths: [String: Int]
        let unreachedMoves: [String]
        let failingSeed: UInt64?
        let failure: String?
        let trace: String?
    }

    static func sim(_ arguments: [String], timeout: TimeInterval = 300) async throws -> (Int32, Report?, String) {
        let (status, stdout, stderr) = try await DevchainDaemon.run(["sim", "--json"] + arguments, timeout: timeout)
        let report = try? JSONDecoder().decode(Report.self, from: Data(stdout.utf8))
        return (status, report, stdout + stderr)
    }

    @Test func aBatchOfSeedsPassesTheOracle() async throws {
        let (status, report, output) = try await Self.sim(["--seeds", "\(Self.batchSeeds)", "--seed", "1"])
        let found = try #require(report, "no report: \(output)")
        #expect(status == 0 && found.failure == nil, "seed \(found.failingSeed ?? 0): \(found.failure ?? "")\n\(found.trace ?? "")")
        #expect(found.schedules == Self.batchSeeds)
        // The campaign reached every fault kind and the node paths that matter.
        for fault in ["fault.crash", "fault.restart", "fault.chain-outage", "fault.partition"] {
            #expect(found.faults[fault, default: 0] > 0, "no schedule injected \(fault)")
        }
        for path in ["committed-mine", "committed-theirs", "refuted", "exit-started", "concluded", "withdrawn"] {
            #expect(found.nodePaths[path, default: 0] > 0, "no schedule reached \(path)")
        }
        // The rarest moves need more seeds than this batch (the release batch of `make test`
        // runs with --require-coverage); the common ones must all be here.
        let rare: Set<String> = ["mallory.register-held-final", "mallory.bribe", "mallory.progress-final-copy", "mallory.move"]
        #expect(Set(found.unreachedMoves).isSubset(of: rare), "Mallory never made: \(found.unreachedMoves)")
    }

    @Test func aSeedReplaysExactly() async throws {
        let (_, first, firstOutput) = try await Self.sim(["--seeds", "3", "--seed", "77", "--trace"])
        let (_, second, _) = try await Self.sim(["--seeds", "3", "--seed", "77", "--trace"])
        let a = try #require(first, "no report: \(firstOutput)")
        let b = try #require(second)
        #expect(a.steps == b.steps && a.moves == b.moves && a.faults == b.faults && a.nodePaths == b.nodePaths)
        #expect(a.trace == b.trace, "the same seeds told two different stories")
    }

    /// A campaign split over child processes tells the same story as one process: every
    /// count adds up to the same figures (the seed fixes each schedule, wherever it runs).
    @Test func aCampaignSplitOverProcessesAddsUpToTheSameReport() async throws {
        let (_, whole, wholeOutput) = try await Self.sim(["--seeds", "12", "--seed", "500"])
        let (status, split, splitOutput) = try await Self.sim(["--seeds", "12", "--seed", "500", "--chunk", "5", "--jobs", "2"])
        let a = try #require(whole, "no report: \(wholeOutput)")
        let b = try #require(split, "no report: \(splitOutput)")
        #expect(status == 0 && b.failure == nil)
        #expect(b.schedules == 12 && a.steps == b.steps && a.moves == b.moves && a.faults == b.faults && a.nodePaths == b.nodePaths)
    }

    @Test func theSchedulerIsDeterministic() async throws {
        let (status, report, output) = try await Self.sim(["--self-test"])
        #expect(status == 0 && report?.failure == nil, "\(output)")
    }
}
