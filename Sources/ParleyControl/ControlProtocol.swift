import ParleyWire

/// The control protocol of `parley node`: what its stdin console, its control socket
/// (`--control unix:PATH`), `parley ctl` and the drill runner exchange. One JSON object per
/// line, keys sorted; Docs/Control.md is the reference.
///
/// - A request names a command and may carry an `id`; its answer carries the same `id`.
///   Requests run concurrently, so answers come in order of completion, not of arrival.
/// - Every line carries `v`, the protocol version (``ControlProtocol/version``). A reader
///   skips keys it does not know; a new version may add keys and commands, never change
///   the meaning of existing ones.
/// - Lines with `event` are node events; lines with `ok` are answers.
public enum ControlProtocol {
    /// The protocol version this build speaks.
    public static let version = 1
}

/// Every command the node answers.
public enum ControlVerb: String, Codable, Sendable, CaseIterable {
    case open, pay, move, close, dispute, status, balance, state, register, cheat
    case silence, wake, disconnect, reconnect, tamper
    case holdFinals = "hold-finals"
    case held
    case progressFinal = "progress-final"
    case subscribe, help, quit

    /// Commands that exist for drills (attacks and faults), listed apart in `help`.
    public var isDrillOnly: Bool {
        switch self {
        case .cheat, .silence, .wake, .disconnect, .reconnect, .tamper, .holdFinals, .held, .progressFinal: true
        default: false
        }
    }

    /// The word form, e.g. `pay CHANNEL AMOUNT [COUNT]`.
    public var usage: String {
        switch self {
        case .open: "open PUBKEY@HOST:PORT MINE THEIRS [tictactoe] [0xPEER]"
        case .pay: "pay CHANNEL AMOUNT [COUNT]"
        case .move: "move CHANNEL CELL"
        case .close: "close CHANNEL"
        case .dispute: "dispute CHANNEL"
        case .status: "status"
        case .balance: "balance"
        case .state: "state CHANNEL"
        case .register: "register CHANNEL HEX|latest"
        case .cheat: "cheat CHANNEL HEX|latest"
        case .silence: "silence"
        case .wake: "wake"
        case .disconnect: "disconnect"
        case .reconnect: "reconnect"
        case .tamper: "tamper CHANNEL KIND"
        case .holdFinals: "hold-finals on|off"
        case .held: "held CHANNEL"
        case .progressFinal: "progress-final CHANNEL"
        case .subscribe: "subscribe"
        case .help: "help"
        case .quit: "quit"
        }
    }

    /// One line on what the command does.
    public var summary: String {
        switch self {
        case .open: "dial the peer and open a channel: we deposit MINE, it deposits THEIRS"
        case .pay: "pay AMOUNT to the peer, COUNT times (default 1)"
        case .move: "tic-tac-toe: our mark in cell 0...8"
        case .close: "close cooperatively; answers once our payout is in our chain account"
        case .dispute: "register our latest state on chain without the peer"
        case .status: "our key, address, chain balance and every channel"
        case .balance: "our chain balance and what our channels hold for us"
        case .state: "our latest fully-signed state, as hex"
        case .register: "submit a state (from `state`) or our latest to the chain ourselves"
        case .cheat: "drills: register, and our watcher stops refuting on that channel"
        case .silence: "drills: drop every channel message, send none"
        case .wake: "drills: undo silence"
        case .disconnect: "drills: cut every peer connection and refuse new ones"
        case .reconnect: "drills: undo disconnect"
        case .tamper: "drills: send the peer a malformed update (bad-signature, overspend, version-skip, wrong-channel, replay)"
        case .holdFinals: "drills: decline final states but countersign them in secret"
        case .held: "drills: the final state countersigned in secret"
        case .progressFinal: "drills: move on chain to a final copy of the registered state"
        case .subscribe: "control connections: send this connection the node's events from now on"
        case .help: "the commands, their usage and what they do"
        case .quit: "shut the node down and exit"
        }
    }
}

/// A channel as a request names it: the 64-hex id or a unique prefix of at least 8 digits.
public typealias ChannelReference = String

/// A typed request.
public struct ControlRequest: Codable, Sendable, Equatable {
    /// The protocol version the sender speaks (absent: 1).
    public var v: Int?
    /// Echoed in the answer, so concurrent requests can be told apart.
    public var id: String?
    public var command: ControlVerb
    public var channel: ChannelReference?
    /// `open`: `PUBKEY@HOST:PORT`.
    public var peer: String?
    /// `open`: our deposit and the peer's.
    public var mine: Amount?
    public var theirs: Amount?
    /// `open`: `tictactoe` for a game channel (absent: payments).
    public var app: String?
    /// `open` on Ethereum: the peer's 0x… settlement address.
    public var peerSigner: String?
    /// `pay`: the amount of each payment and how many (absent: 1).
    public var amount: Amount?
    public var count: UInt64?
    /// `move`: the cell, 0...8.
    public var cell: Int?
    /// `register`/`cheat`: a state's hex, or `latest`.
    public var state: String?
    /// `tamper`: the kind of malformed update.
    public var kind: String?
    /// `hold-finals`: on or off.
    public var on: Bool?

    public init(
        _ command: ControlVerb, id: String? = nil, channel: ChannelReference? = nil, peer: String? = nil,
        mine: Amount? = nil, theirs: Amount? = nil, app: String? = nil, peerSigner: String? = nil,
        amount: Amount? = nil, count: UInt64? = nil, cell: Int? = nil, state: String? = nil, kind: String? = nil,
        on: Bool? = nil
    ) {
        v = ControlProtocol.version
        self.id = id
        self.command = command
        self.channel = channel
        self.peer = peer
        self.mine = mine
        self.theirs = theirs
        self.app = app
        self.peerSigner = peerSigner
        self.amount = amount
        self.count = count
        self.cell = cell
        self.state = state
        self.kind = kind
        self.on = on
    }
}

/// A request that cannot be run as written; the message says how to write it.
public struct ControlUsageError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Both balances of a channel, ours first.
public struct ControlBalances: Codable, Sendable, Equatable {
    public var me: Amount
    public var peer: Amount
    public init(me: Amount, peer: Amount) {
        self.me = me
        self.peer = peer
    }
}

/// Where a channel stands, in one word.
public enum ControlChannelStatus: String, Codable, Sendable {
    /// Version 0 is being signed or the deposits are not all on chain yet.
    case funding
    /// Funded; payments go through.
    case open
    /// A cooperative close or an exit on chain is under way.
    case closing
    /// Over: concluded and paid out.
    case closed
    /// Never funded: given up (our deposit, if any, reclaimed).
    case abandoned
}

/// One channel in `status`.
public struct ControlChannel: Codable, Sendable, Equatable {
    public var channel: String
    public var peer: String
    /// 0 for the opener, 1 for the responder.
    public var seat: Int
    public var version: UInt64
    public var balances: ControlBalances
    public var status: ControlChannelStatus
    /// The engine's phase (`open`, `syncing`, `closing`, …): for drills and debugging.
    public var phase: String
    public var funded: Bool
    public var closing: Bool
    public var closingReason: String?
    public var closed: Bool
    public var connected: Bool

    public init(
        channel: String, peer: String, seat: Int, version: UInt64, balances: ControlBalances,
        status: ControlChannelStatus, phase: String, funded: Bool, closing: Bool, closingReason: String?,
        closed: Bool, connected: Bool
    ) {
        self.channel = channel
        self.peer = peer
        self.seat = seat
        self.version = version
        self.balances = balances
        self.status = status
        self.phase = phase
        self.funded = funded
        self.closing = closing
        self.closingReason = closingReason
        self.closed = closed
        self.connected = connected
    }
}

/// One command in `help`.
public struct ControlCommandHelp: Codable, Sendable, Equatable {
    public var command: String
    public var usage: String
    public var summary: String
    public var drill: Bool

    public init(command: String, usage: String, summary: String, drill: Bool) {
        self.command = command
        self.usage = usage
        self.summary = summary
        self.drill = drill
    }
}

/// The answer to one request. Fields a command does not produce are absent.
public struct ControlResponse: Codable, Sendable, Equatable {
    public var v: Int = ControlProtocol.version
    public var id: String?
    public var command: String
    public var ok: Bool
    /// Why the command failed, and what to do instead where there is something to do.
    public var error: String?
    public var hint: String?
    public var channel: String?
    public var peer: String?
    public var version: UInt64?
    public var balances: ControlBalances?
    /// `pay`: how many payments went through (also on failure).
    public var paid: UInt64?
    /// `close`: what reached our chain account.
    public var payout: Amount?
    /// `state`/`held`: a signed state's hex.
    public var state: String?
    public var kind: String?
    /// `status`: our identity key and listening address.
    public var key: String?
    public var listening: String?
    /// `status`/`balance`: our chain account's balance (absent when the chain did not answer).
    public var chainBalance: Amount?
    /// `balance`: what our open channels hold for us.
    public var inChannels: Amount?
    public var channels: [ControlChannel]?
    public var commands: [ControlCommandHelp]?

    public init(command: String, id: String?, ok: Bool) {
        self.command = command
        self.id = id
        self.ok = ok
    }

    public static func failure(_ command: String, id: String?, error: String, hint: String? = nil) -> ControlResponse {
        var response = ControlResponse(command: command, id: id, ok: false)
        response.error = error
        response.hint = hint
        return response
    }
}

/// What a node reports as it happens.
public enum ControlEventKind: String, Codable, Sendable {
    case ready, opened, funded, abandoned, proposed, committed, rejected
    case peerConnected, peerDisconnected, peerSilent
    case registered, progressed, yourTurnOnChain, refuted, exitStarted, concluded, withdrawn, closed
    case error
}

/// One event line.
public struct ControlEvent: Codable, Sendable, Equatable {
    public var v: Int = ControlProtocol.version
    public var event: ControlEventKind
    public var channel: String?
    public var peer: String?
    public var version: UInt64?
    public var mine: Bool?
    public var balances: ControlBalances?
    public var reason: String?
    public var byPeer: Bool?
    /// `registered`/`progressed`/`yourTurnOnChain`: the chain time the window closes, and
    /// the seconds left when the node saw it.
    public var deadline: UInt64?
    public var secondsLeft: UInt64?
    /// `registered`/`progressed`: `me` or `peer`.
    public var by: String?
    public var stale: UInt64?
    public var amount: Amount?
    public var error: String?
    /// `ready`: our key, address and how many channels the journal held.
    public var key: String?
    public var listening: String?
    public var channels: Int?

    public init(_ event: ControlEventKind, channel: String? = nil) {
        self.event = event
        self.channel = channel
    }
}

/// A line a node writes: an answer or an event.
public enum ControlLine: Sendable, Equatable {
    case response(ControlResponse)
    case event(ControlEvent)
}
