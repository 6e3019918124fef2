import Foundation
import ParleyTestSupport
import ParleyWire
import Testing

/// `parley demo` end to end: a real subprocess, two nodes over loopback TCP, fsync'd
/// journals, settlement on the embedded chain or on a `parley devchain` subprocess.
/// Each run is checked against what the chain must pay, and both journals are verified
/// afterwards with `parley journal verify`.
@Suite("parley demo", .serialized)
struct DemoTests {
    static let deposit: Amount = 1_000
    static let payments = 300

    enum Mode: String, CaseIterable, CustomTestStringConvertible {
        case none, silent, cheat
        var testDescription: String { rawValue }
    }

    @Test("demo settles with the right payouts on the embedded chain", arguments: Mode.allCases)
    func embedded(mode: Mode) async throws {
        try await check(mode: mode, extra: [])
    }

    @Test("demo settles with the right payouts on a devchain subprocess", arguments: [Mode.cheat, .silent])
    func devchain(mode: Mode) async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        let daemon = try DevchainDaemon.start(directory: directory)
        defer {
            daemon.stop(SIGTERM)
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await check(mode: mode, extra: ["--devchain", daemon.address.description])
    }

    @Test("--data refuses a directory that already holds journals")
    func refusesUsedData() async throws {
        let root = try makeTemporaryDirectory("parley-demo-test")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try await DevchainDaemon.run(["demo", "--payments", "3", "--deposit", "10", "--data", root, "--json"], timeout: 60)
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let second = try await DevchainDaemon.run(["demo", "--payments", "3", "--deposit", "10", "--data", root], timeout: 60)
        #expect(second.status != 0)
        #expect(second.stderr.contains("already holds files"), "stderr: \(second.stderr)")
    }

    /// Only the silent mode needs a short proposal timeout (Bob's silence is found by it);
    /// the others keep a long one, so a run that shares two cores with CPU-heavy tests does
    /// not time out a healthy payment (0.5 s did, in CI: the channel then closes early).
    private func check(mode: Mode, extra: [String]) async throws {
        let root = try makeTemporaryDirectory("parley-demo-test")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = try await DevchainDaemon.run(
            ["demo", "--payments", "\(Self.payments)", "--deposit", "\(Self.deposit)", "--dispute", mode.rawValue,
             "--proposal-timeout", mode == .silent ? "0.5" : "10", "--data", root, "--json"] + extra,
            timeout: 120)
        try #require(run.status == 0, "parley demo failed: \(run.stderr)")
        let line = try #require(run.stdout.split(separator: "\n").last.map(String.init))
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let payments = try #require(result["payments"] as? Int)
        let finalVersion = try #require(result["finalVersion"] as? Int)
        let settledVersion = try #require(result["settledVersion"] as? Int)
        let payout = try #require(result["payout"] as? [String: Int])
        let alice = try #require(payout["alice"])
        let bob = try #require(payout["bob"])
        #expect(result["dispute"] as? String == mode.rawValue)
        for key in ["seconds", "updatesPerSecond", "p50Micros", "p99Micros"] {
            #expect(result[key] is Double || result[key] is Int, "\(key) missing in \(line)")
        }
        // Money is conserved and matches the latest fully-signed state: Alice paid 1 per payment.
        #expect(alice + bob == 2 * Int(Self.deposit.value))
        #expect(alice == Int(Self.deposit.value) - payments)
        #expect(bob == Int(Self.deposit.value) + payments)
        #expect(settledVersion == finalVersion)
        switch mode {
        case .none:
            #expect(payments == Self.payments)
            #expect(finalVersion == Self.payments + 1)  // the final (closing) state
            #expect(result["staleVersion"] is NSNull)
        case .silent:
            #expect(payments == Self.payments / 2)  // Bob stops answering halfway
            #expect(finalVersion == payments)
            #expect(result["staleVersion"] is NSNull)
        case .cheat:
            #expect(payments == Self.payments)
            let stale = try #require(result["staleVersion"] as? Int)
            #expect(stale < finalVersion)
        }
        for side in ["alice", "bob"] {
            let verify = try await DevchainDaemon.run(["journal", "verify", root + "/" + side], timeout: 30)
            #expect(verify.status == 0, "journal verify \(side): \(verify.stdout) \(verify.stderr)")
        }
    }
}
