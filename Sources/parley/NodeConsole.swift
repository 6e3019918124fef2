import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyGames
import ParleyLocks
@_spi(Drills) import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire

// The line protocol of `parley node`: one command per stdin line, one JSON answer per
// command on stdout, and node events as JSON lines in between (see NodeCommand's help).

/// A JSON value, so that every answer and event is built as data and printed with sorted keys.
enum JSONValue: Encodable, Sendable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral
{
    case string(String)
    case number(UInt64)
    /// An amount: a JSON number, which may exceed 64 bits (readers that parse numbers as
    /// doubles lose precision above 2^53; Python's json and jq 1.7 keep it exact).
    case amount(Amount)
    case bool(Bool)
    case object([String: JSONValue])
    case array([JSONValue])
    case null

    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .string(value): try container.encode(value)
        case let .number(value): try container.encode(value)
        case let .amount(value): try container.encode(value)
        case let .bool(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// `{"me": …, "peer": …}` for our seat `me`.
    static func balances(_ allocation: Allocation, me: ParticipantIndex) -> JSONValue {
        ["me": .amount(allocation[me]), "peer": .amount(allocation[me.peer])]
    }
}

/// Every stdout line goes through here, one whole line per write(2), under one lock: a
/// pipe reader sees each line as soon as it is written and never half of two lines.
/// (Not `print` + `fflush`: stdio's flush-all would wait on the lock of stdin, which the
/// reader thread holds while it blocks in `readLine`.)
final class ConsoleOutput: Sendable {
    private let lock = Locked<Void>(())

    func line(_ value: JSONValue) {
        let text: String
        do { text = try jsonLine(value) + "\n" } catch {
            writeToStandardError("parley node: cannot encode output: \(error)\n")
            return
        }
        lock.withLock { _ in try? FileHandle.standardOutput.write(contentsOf: Data(text.utf8)) }
    }
}

/// A command that failed; `message` is what the `error` field says.
struct ConsoleFailure: Error, CustomStringConvertible {
    let description: String
    /// Fields the failure answer carries besides the error (e.g. how many payments went through).
    var extra: [String: JSONValue] = [:]
    init(_ description: String, extra: [String: JSONValue] = [:]) {
        self.description = description
        self.extra = extra
    }
}

/// Runs the commands of one `parley node` process, one at a time, in order.
struct NodeConsole {
    let node: Node
    let output: ConsoleOutput

    /// Shortest channel id prefix a command accepts.
    static let minimumPrefixLength = 8

    enum Outcome {
        case carryOn
        case quit
    }

    /// Answers one input line with exactly one output line (blank lines are skipped).
    func execute(_ line: String) async -> Outcome {
        let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let verb = words.first else { return .carryOn }
        let arguments = Array(words.dropFirst())
        do {
            var answer: [String: JSONValue]
            switch verb.lowercased() {
            case "open": answer = try await open(arguments)
            case "pay": answer = try await pay(arguments)
            case "close": answer = try await close(arguments)
            case "dispute": answer = try await dispute(arguments)
            case "status": answer = try await status(arguments)
            case "state": answer = try await state(arguments)
            case "register": answer = try await register(arguments, asCheater: false)
            case "cheat": answer = try await register(arguments, asCheater: true)
            case "tamper": answer = try await tamper(arguments)
            case "move": answer = try await move(arguments)
            case "hold-finals":
                try expectCount(arguments, 1, usage: "hold-finals on|off")
                guard ["on", "off"].contains(arguments[0]) else { throw ConsoleFailure("expected on or off (usage: hold-finals on|off)") }
                node.setHoldingDeclinedFinals(arguments[0] == "on")
                answer = [:]
            case "held": answer = try await held(arguments)
            case "progress-final":
                try expectCount(arguments, 1, usage: "progress-final CHANNEL")
                let channel = try await channel(arguments[0])
                try await node.progressToFinalCopy(channel.id)
                answer = ["channel": .string(channel.id.description)]
            case "silence", "wake":
                try expectCount(arguments, 0, usage: verb)
                node.setSilent(verb.lowercased() == "silence")
                answer = [:]
            case "disconnect", "reconnect":
                try expectCount(arguments, 0, usage: verb)
                await node.setOffline(verb.lowercased() == "disconnect")
                answer = [:]
            case "quit", "exit":
                try expectCount(arguments, 0, usage: "quit")
                output.line(["ok": true, "command": "quit"])
                return .quit
            default:
                throw ConsoleFailure(
                    "unknown command '\(verb)'; commands: open, pay, move, close, dispute, status, state, register, cheat, silence, wake, disconnect, reconnect, tamper, hold-finals, held, progress-final, quit")
            }
            answer["ok"] = true
            answer["command"] = .string(verb.lowercased())
            output.line(.object(answer))
        } catch {
            var answer: [String: JSONValue] = (error as? ConsoleFailure)?.extra ?? [:]
            answer["ok"] = false
            answer["command"] = .string(verb.lowercased())
            answer["error"] = .string("\(error)")
            output.line(.object(answer))
        }
        return .carryOn
    }

    // MARK: - Commands

    private func open(_ arguments: [String]) async throws -> [String: JSONValue] {
        let usage = "open PUBKEY@HOST:PORT MINE THEIRS [tictactoe] [0xPEER]"
        // On an Ethereum chain the peer's settlement address (its `parley keygen --show`
        // 0x… address) comes last: the channel's states are signed with Ethereum keys.
        var arguments = arguments
        var peerSigner: SettlementAddress?
        if let last = arguments.last, last.hasPrefix("0x"), arguments.count > 3 {
            do { peerSigner = .ethereum(try EthereumAddress(hex: last)) } catch {
                throw ConsoleFailure("bad peer address \(last): \(error) (usage: \(usage))")
            }
            arguments.removeLast()
        }
        guard arguments.count == 3 || (arguments.count == 4 && arguments[3] == "tictactoe") else {
            throw ConsoleFailure("expected 3 arguments, or 4 with `tictactoe`, then the peer's 0x… address on Ethereum (usage: \(usage))")
        }
        let game = arguments.count == 4
        guard let at = arguments[0].firstIndex(of: "@") else {
            throw ConsoleFailure("expected PUBKEY@HOST:PORT, got '\(arguments[0])' (usage: \(usage))")
        }
        let peer = try publicKey(String(arguments[0][..<at]))
        let address: SocketAddress
        do { address = try SocketAddress(String(arguments[0][arguments[0].index(after: at)...])) } catch {
            throw ConsoleFailure("bad peer address: \(error)")
        }
        let mine = try amount(arguments[1], what: "MINE", allowZero: true)
        let theirs = try amount(arguments[2], what: "THEIRS", allowZero: true)
        guard mine > 0 || theirs > 0 else {
            throw ConsoleFailure("a channel needs a deposit: MINE and THEIRS are both 0")
        }
        let channel = try await node.open(
            with: peer, at: address, deposit: mine, theirs: theirs, app: game ? TicTacToe.id : .payment,
            appData: game ? TicTacToe.initialAppData : [], peerSigner: peerSigner)
        let status = try channel.status
        return [
            "channel": .string(channel.id.description), "peer": .string(peer.humanForm),
            "version": .number(status.latest.version), "balances": .balances(status.latest.state.allocation, me: status.me),
        ]
    }

    private func pay(_ arguments: [String]) async throws -> [String: JSONValue] {
        let usage = "pay CHANNEL AMOUNT [COUNT]"
        guard arguments.count == 2 || arguments.count == 3 else {
            throw ConsoleFailure("expected 2 or 3 arguments, got \(arguments.count) (usage: \(usage))")
        }
        let channel = try await channel(arguments[0])
        let value = try amount(arguments[1], what: "AMOUNT", allowZero: false)
        let count = arguments.count == 3 ? try positiveCount(arguments[2], what: "COUNT") : 1
        var paid: UInt64 = 0
        var signed: SignedState?
        while paid < count {
            do { signed = try await channel.pay(value) } catch {
                throw ConsoleFailure("\(error)" + (paid > 0 ? " (after \(paid) of \(count) payments)" : ""), extra: ["paid": .number(paid)])
            }
            paid += 1
        }
        let me = try channel.status.me
        let latest = try signed ?? channel.status.latest
        return [
            "channel": .string(channel.id.description), "version": .number(latest.version),
            "balances": .balances(latest.state.allocation, me: me), "paid": .number(paid),
        ]
    }

    private func state(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 1, usage: "state CHANNEL")
        let channel = try await channel(arguments[0])
        let latest = try channel.status.latest
        guard latest.isFullySigned else { throw ConsoleFailure("the channel has no fully-signed state yet") }
        return [
            "channel": .string(channel.id.description), "version": .number(latest.version),
            "state": .string(Hex.encode(latest.wireBytes)),
        ]
    }

    /// `register`: submit a state; our watcher keeps guarding the channel. `cheat` (drills):
    /// the same, and our own watcher stops refuting on that channel, so the peer's is tested.
    private func register(_ arguments: [String], asCheater: Bool) async throws -> [String: JSONValue] {
        try expectCount(arguments, 2, usage: "\(asCheater ? "cheat" : "register") CHANNEL HEX|latest")
        let channel = try await channel(arguments[0])
        let signed: SignedState
        if arguments[1] == "latest" {
            signed = try channel.status.latest
        } else {
            guard let bytes = Hex.decode(arguments[1]), !bytes.isEmpty else { throw ConsoleFailure("the state is not hex (use `state CHANNEL`)") }
            do { signed = try SignedState(wireBytes: bytes) } catch { throw ConsoleFailure("not a signed state: \(error)") }
            guard signed.state.channelID == channel.id else {
                throw ConsoleFailure("that state belongs to channel \(signed.state.channelID.shortID), not \(channel.id.shortID)")
            }
        }
        if asCheater { try await node.registerAsCheater(signed) } else { try await node.register(signed) }
        return ["channel": .string(channel.id.description), "version": .number(signed.version)]
    }

    private func tamper(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 2, usage: "tamper CHANNEL KIND")
        let channel = try await channel(arguments[0])
        guard let kind = Tampering(rawValue: arguments[1]) else {
            throw ConsoleFailure("unknown kind '\(arguments[1])'; kinds: \(Tampering.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let version = try await node.sendTampered(channel.id, kind)
        return ["channel": .string(channel.id.description), "version": .number(version), "kind": .string(kind.rawValue)]
    }

    private func close(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 1, usage: "close CHANNEL")
        let channel = try await channel(arguments[0])
        let payout = try await channel.close()
        let status = try channel.status
        return [
            "channel": .string(channel.id.description), "payout": .amount(payout),
            "version": .number(status.latest.version), "balances": .balances(status.latest.state.allocation, me: status.me),
        ]
    }

    /// `move CHANNEL CELL`: our mark in cell 0...8 of a tic-tac-toe channel.
    private func move(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 2, usage: "move CHANNEL CELL")
        let channel = try await channel(arguments[0])
        guard let cell = Int(arguments[1]), (0..<TicTacToe.Board.cellCount).contains(cell) else {
            throw ConsoleFailure("CELL must be 0...\(TicTacToe.Board.cellCount - 1), got '\(arguments[1])'")
        }
        let signed = try await channel.update { state in state = try TicTacToe.move(cell, in: state) }
        let me = try channel.status.me
        return [
            "channel": .string(channel.id.description), "version": .number(signed.version),
            "balances": .balances(signed.state.allocation, me: me),
        ]
    }

    /// `held CHANNEL`: the final state this node countersigned in secret (drills).
    private func held(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 1, usage: "held CHANNEL")
        let channel = try await channel(arguments[0])
        guard let held = node.heldFinalState(channel.id) else {
            throw ConsoleFailure("no final state was countersigned in secret on channel \(channel.id.shortID) (use hold-finals on first)")
        }
        return [
            "channel": .string(channel.id.description), "version": .number(held.version),
            "state": .string(Hex.encode(held.wireBytes)),
        ]
    }

    private func dispute(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 1, usage: "dispute CHANNEL")
        let channel = try await channel(arguments[0])
        try await channel.dispute()
        return ["channel": .string(channel.id.description), "version": .number(try channel.status.latest.version)]
    }

    private func status(_ arguments: [String]) async throws -> [String: JSONValue] {
        try expectCount(arguments, 0, usage: "status")
        let listening = await node.listeningAddress
        return [
            "key": .string(node.publicKey.humanForm),
            "listening": listening.map { .string($0.description) } ?? .null,
            "channels": .array(node.statuses.map(Self.describe)),
        ]
    }

    static func describe(_ status: ChannelStatus) -> JSONValue {
        [
            "channel": .string(status.id.description), "peer": .string(status.peer.humanForm),
            "seat": .number(UInt64(status.me.rawValue)), "version": .number(status.latest.version),
            "balances": .balances(status.latest.state.allocation, me: status.me), "phase": .string(status.phase.rawValue),
            "funded": .bool(status.isFunded), "closing": .bool(status.isClosing),
            "closingReason": status.closingReason.map { .string($0.description) } ?? .null, "closed": .bool(status.isClosed),
            "connected": .bool(status.isConnected),
        ]
    }

    // MARK: - Arguments

    private func expectCount(_ arguments: [String], _ count: Int, usage: String) throws {
        guard arguments.count == count else {
            throw ConsoleFailure("expected \(plural(count, "argument")), got \(arguments.count) (usage: \(usage))")
        }
    }

    private func amount(_ text: String, what: String, allowZero: Bool) throws -> Amount {
        guard let value = Amount(text), allowZero || value > 0 else {
            throw ConsoleFailure(
                "\(what) must be a \(allowZero ? "non-negative" : "positive") whole number below 2^128, got '\(text)'")
        }
        return value
    }

    private func positiveCount(_ text: String, what: String) throws -> UInt64 {
        guard let value = UInt64(text), value > 0 else {
            throw ConsoleFailure("\(what) must be a positive whole number, got '\(text)'")
        }
        return value
    }

    private func publicKey(_ text: String) throws -> PublicKey {
        do {
            if text.utf8.count == 64, text.utf8.allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }) {
                return try PublicKey(hex: text)
            }
            return try PublicKey(humanForm: text)
        } catch {
            throw ConsoleFailure("bad public key '\(text)': \(error) (give the pk1… form or 64 hex digits)")
        }
    }

    /// The channel whose hex id is `text` or starts with it.
    private func channel(_ text: String) async throws -> Channel {
        let prefix = text.lowercased()
        guard prefix.count >= Self.minimumPrefixLength, prefix.allSatisfy(\.isHexDigit) else {
            throw ConsoleFailure(
                "'\(text)' is not a channel id: give the hex id or a unique prefix of at least \(Self.minimumPrefixLength) hex digits")
        }
        let matches = node.statuses.map(\.id).filter { $0.description.hasPrefix(prefix) }
        guard let id = matches.first else { throw ConsoleFailure("no channel id starts with \(prefix)") }
        guard matches.count == 1 else {
            throw ConsoleFailure("\(prefix) matches \(matches.count) channels; give more digits")
        }
        guard let channel = await node.channel(id) else { throw NodeError.unknownChannel(id) }
        return channel
    }
}

/// Renders every node event as one JSON line.
enum NodeEventLine {
    static func render(_ event: NodeEvent, node: Node) -> JSONValue {
        let seat = { (id: ChannelID) in node.statuses.first { $0.id == id }?.me }
        let channel = { (id: ChannelID) -> JSONValue in .string(id.description) }
        switch event {
        case let .opened(id, peer):
            return ["event": "opened", "channel": channel(id), "peer": .string(peer.humanForm)]
        case let .funded(id):
            return ["event": "funded", "channel": channel(id)]
        case let .proposed(id, version):
            return ["event": "proposed", "channel": channel(id), "version": .number(version)]
        case let .committed(id, signed, mine):
            var line: [String: JSONValue] = [
                "event": "committed", "channel": channel(id), "version": .number(signed.version), "mine": .bool(mine),
            ]
            if let me = seat(id) { line["balances"] = .balances(signed.state.allocation, me: me) }
            return .object(line)
        case let .rejected(id, version, reason, byPeer):
            return [
                "event": "rejected", "channel": channel(id), "version": version.map { .number($0) } ?? .null,
                "reason": .string(reason), "byPeer": .bool(byPeer),
            ]
        case let .peerConnected(peer):
            return ["event": "peerConnected", "peer": .string(peer.humanForm)]
        case let .peerDisconnected(peer, reason):
            return ["event": "peerDisconnected", "peer": .string(peer.humanForm), "reason": .string(reason)]
        case let .peerSilent(id):
            return ["event": "peerSilent", "channel": channel(id)]
        case let .registered(id, version, deadline, by):
            let who: JSONValue = seat(id).map { .string($0 == by ? "me" : "peer") } ?? .number(UInt64(by.rawValue))
            return [
                "event": "registered", "channel": channel(id), "version": .number(version),
                "deadline": .number(deadline.seconds), "by": who,
            ]
        case let .progressed(id, version, deadline, by):
            let who: JSONValue = seat(id).map { .string($0 == by ? "me" : "peer") } ?? .number(UInt64(by.rawValue))
            return [
                "event": "progressed", "channel": channel(id), "version": .number(version),
                "deadline": .number(deadline.seconds), "by": who,
            ]
        case let .yourTurnOnChain(id, state, deadline):
            return [
                "event": "yourTurnOnChain", "channel": channel(id), "version": .number(state.version),
                "deadline": .number(deadline.seconds),
            ]
        case let .refuted(id, stale, with):
            return ["event": "refuted", "channel": channel(id), "stale": .number(stale), "version": .number(with)]
        case let .exitStarted(id, version, reason):
            return ["event": "exitStarted", "channel": channel(id), "version": .number(version), "reason": .string(reason.rawValue)]
        case let .concluded(id, version, allocation):
            var line: [String: JSONValue] = ["event": "concluded", "channel": channel(id), "version": .number(version)]
            if let me = seat(id) { line["balances"] = .balances(allocation, me: me) }
            return .object(line)
        case let .withdrawn(id, amount):
            return ["event": "withdrawn", "channel": channel(id), "amount": .amount(amount)]
        case let .closed(id):
            return ["event": "closed", "channel": channel(id)]
        case let .error(id, message):
            return ["event": "error", "channel": id.map(channel) ?? .null, "error": .string(message)]
        }
    }
}
