import ParleyChannel

/// A scripted dispute rehearsal: two peers, a channel between them, and steps that end in
/// expectations. The file format is in Docs/Drills.md; `DrillParser` reads it.
public struct Drill: Sendable {
    /// The file it came from (for messages).
    public var path: String
    public var name: String
    public var description: String
    /// Challenge window in seconds of chain time.
    public var challenge: UInt64
    /// Exactly two peers, in file order: the first opens the channel.
    public var peers: [Peer]
    public var steps: [Step]
    /// The channel's app: a payment channel, or tic-tac-toe (`app: tictactoe`).
    public var game = false
    /// How long each peer's node lets the other stay disconnected, while it has funds in
    /// the channel, before exiting on chain (`disconnect-grace`; nil: the node's default).
    public var disconnectGrace: UInt64?

    public struct Peer: Sendable, Equatable {
        public var name: String
        /// What this peer deposits when the channel opens.
        public var deposit: UInt64

        public init(name: String, deposit: UInt64) {
            self.name = name
            self.deposit = deposit
        }
    }

    /// One step and where it is written.
    public struct Step: Sendable {
        public var line: Int
        public var action: Action
    }

    public enum Action: Sendable, Equatable {
        case pay(from: String, amount: UInt64, count: Int)
        case keep(peer: String, label: String)
        case register(peer: String, state: StateReference)
        /// Cooperative close, proposed by `by` (the first peer unless given).
        case close(by: String?)
        case dispute(peer: String)
        case silence(String)
        case wake(String)
        case disconnect
        case reconnect
        case crash(String)
        case restart(String)
        case advance(UInt64)
        /// `kind` is a `Tampering` raw value (checked by the parser).
        case tamper(from: String, kind: String)
        /// `peer` countersigns the next final state it is offered in secret, answers
        /// "declined", and the runner remembers the held state as `label`.
        case holdFinal(peer: String, label: String)
        /// Tic-tac-toe: `peer` marks `cell` (0...8).
        case move(peer: String, cell: Int)
        /// Tic-tac-toe, on chain: `peer` (to move) tries to progress to a final copy of the
        /// registered state, signed by itself alone.
        case progressFinal(peer: String)
        case expect(Expectation)
    }

    public enum StateReference: Sendable, Equatable {
        case latest
        case label(String)
    }

    /// What an `expect` step checks; every field given must hold.
    public struct Expectation: Sendable, Equatable {
        public var chainVersion: UInt64?
        public var chainPhase: String?
        public var payout: [String: UInt64]?
        public var peer: PeerExpectation?
        public var rejected: Bool?
        public var error: String?

        public init(
            chainVersion: UInt64? = nil, chainPhase: String? = nil, payout: [String: UInt64]? = nil,
            peer: PeerExpectation? = nil, rejected: Bool? = nil, error: String? = nil
        ) {
            self.chainVersion = chainVersion
            self.chainPhase = chainPhase
            self.payout = payout
            self.peer = peer
            self.rejected = rejected
            self.error = error
        }

        /// Whether this expectation is about the previous step's outcome.
        public var judgesPreviousStep: Bool { rejected != nil || error != nil }
    }

    public struct PeerExpectation: Sendable, Equatable {
        public var name: String
        public var version: UInt64?
        public var balances: [String: UInt64]?

        public init(name: String, version: UInt64? = nil, balances: [String: UInt64]? = nil) {
            self.name = name
            self.version = version
            self.balances = balances
        }
    }

    public func peer(named name: String) -> Peer? { peers.first { $0.name == name } }

    /// The seat a peer holds: the first peer in the file opens, so it sits first.
    public func seat(of name: String) -> ParticipantIndex? {
        guard let index = peers.firstIndex(where: { $0.name == name }) else { return nil }
        return index == 0 ? .first : .second
    }

    public func other(than name: String) -> String? { peers.first { $0.name != name }?.name }
}

/// A drill file that cannot be run, with the line where the problem is.
public struct DrillFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    /// 1-based; 0 when the problem is the file as a whole.
    public var line: Int
    public var message: String

    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}
