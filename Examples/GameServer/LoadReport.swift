import Foundation
import ParleyWire

/// What the client process prints on stdout, one JSON object per line.
enum ClientLine: Codable {
    /// Every channel is open and funded (or failed to open); the client waits for `go` or
    /// `stop` on stdin.
    case opened(opened: Int, failed: Int)
    /// The matches are over and every channel is closed on the client's side.
    case done(ClientReport)

    private enum CodingKeys: String, CodingKey { case phase, opened, failed, report }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .phase) {
        case "opened":
            self = .opened(opened: try container.decode(Int.self, forKey: .opened), failed: try container.decode(Int.self, forKey: .failed))
        default:
            self = .done(try container.decode(ClientReport.self, forKey: .report))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .opened(opened, failed):
            try container.encode("opened", forKey: .phase)
            try container.encode(opened, forKey: .opened)
            try container.encode(failed, forKey: .failed)
        case let .done(report):
            try container.encode("done", forKey: .phase)
            try container.encode(report, forKey: .report)
        }
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// The client process's results.
struct ClientReport: Codable {
    var matches: Int
    var clients: Int
    var opened: Int
    var completed: Int
    var forfeits: Int
    var errors: Int
    /// Up to ten error texts, for a person to read.
    var errorSamples: [String]
    /// Moves committed while playing, both sides' (each of ours and each answer we saw).
    var moves: Int
    /// From `go` to the last committed move.
    var playSeconds: Double
    /// Per move: from proposing ours until the server's answer is committed on our side.
    var p50Micros: Double
    var p99Micros: Double
    /// From the start of play: when the last cooperatively closed match was settled on our
    /// side, and when the first forfeited one was (nil when there were none).
    var lastCompletedSeconds: Double?
    var firstForfeitSeconds: Double?
    /// Why forfeited matches went to the chain (the client channel's closing reason), and how many.
    var forfeitReasons: [String: Int]
}

/// What `game-server --load N --json` prints.
struct LoadSummary: Codable {
    var matches: Int
    var opened: Int
    /// Settled on chain from a cooperatively closed final state.
    var completed: Int
    /// Settled on chain from an unfinished game after the window: the player to move lost.
    var forfeits: Int
    var errors: Int
    var errorSamples: [String]
    var movesPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    /// Server RSS with all channels open and funded minus RSS before any, per channel.
    var bytesPerChannel: Double
    /// The same, both readings taken after `malloc_trim(0)`: without memory malloc keeps
    /// after transient allocations (message buffers while opening).
    var trimmedBytesPerChannel: Double
    var seconds: Double
    var clients: Int
    var vanish: Int
    var idle: Bool
    /// "held", "mismatch" or "skipped" (idle runs do not settle).
    var conservation: String
    /// Deposited into the load run's channels, and paid out of them, on chain.
    var stakes: Amount
    var payouts: Amount
    var moves: Int
    var serverMoves: Int
    var serverAnswerP50Micros: Double
    var serverAnswerP99Micros: Double
    /// Forfeits whose whole pot went to the server: the client was the one to stop.
    var forfeitsToServer: Int
    /// Answers the server could not make (a match already on its way to the chain).
    var serverMoveFailures: Int
    var serverNodeErrors: Int
    var rssBeforeBytes: Int
    var rssOpenBytes: Int
    var openSeconds: Double
    /// From the start of play, on the clients' side: when the last completed match and the
    /// first forfeited one were settled. Live matches finishing before the first forfeit
    /// shows they did not wait behind the vanished ones.
    var lastCompletedSeconds: Double?
    var firstForfeitSeconds: Double?
    /// The clients' own count, to compare with the chain's `completed` and `forfeits`.
    var clientCompleted: Int
    var clientForfeits: Int
    /// Why the clients' forfeited matches went to the chain, and how many of each.
    var forfeitReasons: [String: Int]
    /// The server node's last `error` event and last failed answer, if any, for a person to read.
    var serverLastNodeError: String?
    var serverLastMoveFailure: String?
    var timeMode: String
    /// Replays the clients' moves with `--seed`.
    var seed: UInt64
    var build: String
}

