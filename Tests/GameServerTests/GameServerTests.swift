import Foundation
import ParleySubprocess
import ParleyTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `game-server --load` end to end: a devchain and the server in one process, the clients in
/// a second, every match a funded tic-tac-toe channel that is played out and settled on chain.
@Suite("game server load", .serialized, .timeLimit(.minutes(3)))
struct GameServerTests {
    static let stake = 10

    @Test("500 matches are all settled on chain, and the chain pays out exactly what was staked")
    func fiveHundredMatchesSettleAndConserve() async throws {
        let result = try await offPool { try GameServerExecutable.load(["--load", "500", "--stake", "\(Self.stake)"]) }
        #expect(result.int("matches") == 500)
        #expect(result.int("opened") == 500)
        #expect(result.int("completed") + result.int("forfeits") == 500)
        #expect(result.int("errors") == 0, "errors: \(result.object["errorSamples"] ?? [])")
        #expect(result.string("conservation") == "held")
        #expect(result.int("stakes") == 500 * 2 * Self.stake)
        #expect(result.int("payouts") == result.int("stakes"))
        #expect(result.double("movesPerSecond") > 0)
        #expect(result.double("p50Micros") > 0)
        #expect(result.double("p99Micros") >= result.double("p50Micros"))
        #expect(result.double("bytesPerChannel") > 0)
    }

    @Test("vanished clients forfeit through the chain while every other match completes")
    func vanishedClientsForfeitWithoutStallingOthers() async throws {
        // The server's turn timer starts when a channel is funded, and the clients hold their
        // first move until every match is open. With 1 s, a loaded machine (another test run
        // beside this one) opened slowly enough that the server sent 45 live matches to the
        // chain at version 0 (`forfeitReasons` said so); 3 s leaves room.
        let result = try await offPool { try GameServerExecutable.load(["--load", "60", "--vanish", "5", "--turn-timeout", "3"]) }
        #expect(result.int("matches") == 60)
        #expect(result.int("forfeits") >= 5)
        #expect(result.int("forfeitsToServer") >= 5, "a client that stops moving loses its stake to the server")
        #expect(
            result.int("completed") == 60 - 5,
            "every match that kept moving completed; forfeited because \(result.object["forfeitReasons"] ?? "-"), server's last error \(result.object["serverLastNodeError"] ?? "-")")
        #expect(result.int("completed") + result.int("forfeits") == 60)
        // The live matches were settled before the first forfeit: none waited behind a vanished one.
        #expect(result.double("lastCompletedSeconds") < result.double("firstForfeitSeconds"))
        #expect(result.int("errors") == 0, "errors: \(result.object["errorSamples"] ?? [])")
        #expect(result.string("conservation") == "held")
        #expect(result.int("payouts") == 60 * 2 * Self.stake)
    }
}

/// The same on Ethereum: the local EVM, Parley's adjudicator and tic-tac-toe contract; the
/// vanished clients' forfeits are judged and paid by the contracts.
@Suite("game server on the local EVM", .serialized, .timeLimit(.minutes(5)), .enabled(if: EVMFixture.isAvailable, "needs the local EVM: make evm-env"))
struct GameServerEVMTests {
    @Test("forfeits settle through the EVM adjudicator and every other match completes")
    func forfeitsSettleOnTheLocalEVM() async throws {
        let result = try await offPool {
            try GameServerExecutable.load(["--load", "8", "--vanish", "3", "--turn-timeout", "20", "--evm", "--stake", "10"])
        }
        #expect(result.int("errors") == 0, "errors: \(result.object["errorSamples"] ?? [])")
        #expect(result.int("forfeits") == 3, "forfeited because \(result.object["forfeitReasons"] ?? "-")")
        #expect(result.int("forfeitsToServer") == 3, "a client that stops moving loses its stake to the server")
        #expect(result.int("completed") == 5)
        #expect(result.string("conservation") == "held")
        #expect(result.int("payouts") == 8 * 2 * 10)
        #expect(result.string("timeMode") == "evm manual")
    }
}

/// The `game-server` executable the test target depends on, built next to the test bundle
/// (found by `ParleyExecutable.locate(named:)`, as `parley` is).
enum GameServerExecutable {
    static let name = "game-server"
    static let timeout: TimeInterval = 150

    static func locate() throws -> String {
        guard let path = ParleyExecutable.locate(named: name) else {
            throw DevchainTestFailure("the `game-server` executable is not next to the test bundle; build with `swift build --build-tests`")
        }
        return path
    }

    /// Runs `game-server arguments… --json` to completion and parses the JSON it prints.
    static func load(_ arguments: [String]) throws -> LoadResult {
        let process = try SpawnedProcess(
            executable: try locate(), arguments: arguments + ["--json"], standardOutput: .pipe, standardError: .pipe)
        guard let out = process.standardOutput, let err = process.standardError else {
            throw DevchainTestFailure("game-server's pipes are missing")
        }
        let stdout = PipeText(out)
        let stderr = PipeText(err)
        let deadline = Date(timeIntervalSinceNow: timeout)
        guard stdout.waitForEnd(before: deadline) else {
            process.signal(SIGKILL)  // its client process exits when its stdin closes
            process.waitUntilExit()
            throw DevchainTestFailure("game-server \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        let ended = process.waitUntilExit()
        guard let line = stdout.lines.last, let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw DevchainTestFailure(
                "game-server printed no JSON (\(ended)); stderr: \(stderr.text.suffix(2_000))")
        }
        print("game-server \(arguments.joined(separator: " ")): \(line)")  // the seed replays a failure
        return LoadResult(object: object, status: ended.status)
    }
}

struct LoadResult: @unchecked Sendable {  // an immutable parsed JSON object
    let object: [String: Any]
    let status: Int32

    func int(_ key: String) -> Int { (object[key] as? NSNumber)?.intValue ?? -1 }
    func double(_ key: String) -> Double { (object[key] as? NSNumber)?.doubleValue ?? -1 }
    func string(_ key: String) -> String? { object[key] as? String }
}
