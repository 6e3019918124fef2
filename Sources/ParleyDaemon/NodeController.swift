import Foundation
import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyGames
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyWire

/// Runs control-protocol requests against one node: the stdin console and every control
/// socket connection of `parley node` go through here (Docs/Control.md).
public struct NodeController: Sendable {
    public let node: Node

    /// Shortest channel id prefix a command accepts.
    static let minimumPrefixLength = 8
    /// How long `close` waits for an offline peer before it fails with a hint to `dispute`
    /// (`parley node --close-timeout`).
    public var closeDeadline: Duration = .seconds(30)

    public init(node: Node, closeDeadline: Duration = .seconds(30)) {
        self.node = node
        self.closeDeadline = closeDeadline
    }

    /// Answers one request. Never throws: a failure is an answer with `ok: false`.
    public func answer(_ request: ControlRequest) async -> ControlResponse {
        let verb = request.command
        do {
            var response = try await run(request)
            response.id = request.id
            return response
        } catch let failure as ControlFailure {
            return .failure(verb.rawValue, id: request.id, error: failure.description, hint: failure.hint)
                .with { $0.paid = failure.paid }
        } catch let error as NodeError {
            return .failure(verb.rawValue, id: request.id, error: error.description, hint: Self.hint(for: error, verb: verb))
        } catch {
            return .failure(verb.rawValue, id: request.id, error: "\(error)")
        }
    }

    private func run(_ request: ControlRequest) async throws -> ControlResponse {
        let verb = request.command
        var response = ControlResponse(command: verb.rawValue, id: request.id, ok: true)
        switch verb {
        case .open: try await open(request, into: &response)
        case .pay: try await pay(request, into: &response)
        case .move:
            let channel = try await channel(request)
            guard let cell = request.cell, (0..<TicTacToe.Board.cellCount).contains(cell) else {
                throw ControlFailure("CELL must be 0...\(TicTacToe.Board.cellCount - 1) (usage: \(verb.usage))")
            }
            let signed = try await channel.update { state in state = try TicTacToe.move(cell, in: state) }
            response.channel = channel.id.description
            response.version = signed.version
            response.balances = Self.balances(signed.state.allocation, me: try channel.status.me)
        case .close:
            let channel = try await channel(request)
            let payout = try await withDeadline(closeDeadline, what: "the peer to countersign the final state") {
                try await channel.close()
            }
            let status = try channel.status
            response.channel = channel.id.description
            response.payout = payout
            response.version = status.latest.version
            response.balances = Self.balances(status.latest.state.allocation, me: status.me)
        case .dispute:
            let channel = try await channel(request)
            try await channel.dispute()
            response.channel = channel.id.description
            response.version = try channel.status.latest.version
        case .status:
            response.key = node.publicKey.humanForm
            response.listening = await node.listeningAddress?.description
            response.chainBalance = try? await node.settlement.balance(of: node.publicKey)
            response.channels = node.statuses.map(Self.describe)
        case .balance:
            response.key = node.publicKey.humanForm
            response.chainBalance = try await node.settlement.balance(of: node.publicKey)
            response.inChannels = node.statuses.filter { !$0.isClosed }.reduce(Amount.zero) { $0 + $1.myBalance }
        case .state:
            let channel = try await channel(request)
            let latest = try channel.status.latest
            guard latest.isFullySigned else { throw ControlFailure("the channel has no fully-signed state yet") }
            response.channel = channel.id.description
            response.version = latest.version
            response.state = Hex.encode(latest.wireBytes)
        case .register, .cheat:
            let channel = try await channel(request)
            let signed: SignedState
            let text = request.state ?? ""
            if text == "latest" {
                signed = try channel.status.latest
            } else {
                guard let bytes = Hex.decode(text), !bytes.isEmpty else {
                    throw ControlFailure("the state is not hex (use `state CHANNEL`)")
                }
                do { signed = try SignedState(wireBytes: bytes) } catch { throw ControlFailure("not a signed state: \(error)") }
                guard signed.state.channelID == channel.id else {
                    throw ControlFailure(
                        "that state belongs to channel \(signed.state.channelID.shortID), not \(channel.id.shortID)")
                }
            }
            if verb == .cheat { try await node.registerAsCheater(signed) } else { try await node.register(signed) }
            response.channel = channel.id.description
            response.version = signed.version
        case .tamper:
            let channel = try await channel(request)
            guard let kind = request.kind.flatMap(Tampering.init(rawValue:)) else {
                throw ControlFailure(
                    "unknown kind '\(request.kind ?? "")'; kinds: \(Tampering.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            response.channel = channel.id.description
            response.version = try await node.sendTampered(channel.id, kind)
            response.kind = kind.rawValue
        case .holdFinals:
            guard let on = request.on else { throw ControlFailure("expected on or off (usage: \(verb.usage))") }
            node.setHoldingDeclinedFinals(on)
        case .held:
            let channel = try await channel(request)
            guard let held = node.heldFinalState(channel.id) else {
                throw ControlFailure(
                    "no final state was countersigned in secret on channel \(channel.id.shortID) (use hold-finals on first)")
            }
            response.channel = channel.id.description
            response.version = held.version
            response.state = Hex.encode(held.wireBytes)
        case .progressFinal:
            let channel = try await channel(request)
            try await node.progressToFinalCopy(channel.id)
            response.channel = channel.id.description
        case .silence, .wake:
            node.setSilent(verb == .silence)
        case .disconnect, .reconnect:
            await node.setOffline(verb == .disconnect)
        case .help:
            response.commands = ControlVerb.allCases.map {
                ControlCommandHelp(command: $0.rawValue, usage: $0.usage, summary: $0.summary, drill: $0.isDrillOnly)
            }
        case .subscribe, .quit:
            break  // the connection or the console acts on these
        }
        return response
    }

    private func open(_ request: ControlRequest, into response: inout ControlResponse) async throws {
        let usage = ControlVerb.open.usage
        guard let target = request.peer, let at = target.firstIndex(of: "@") else {
            throw ControlFailure("expected PUBKEY@HOST:PORT, got '\(request.peer ?? "")' (usage: \(usage))")
        }
        let peer = try Self.publicKey(String(target[..<at]))
        let address: SocketAddress
        do { address = try SocketAddress(String(target[target.index(after: at)...])) } catch {
            throw ControlFailure("bad peer address: \(error) (usage: \(usage))")
        }
        var peerSigner: SettlementAddress?
        if let text = request.peerSigner {
            do { peerSigner = .ethereum(try EthereumAddress(hex: text)) } catch {
                throw ControlFailure("bad peer address \(text): \(error) (usage: \(usage))")
            }
        }
        let mine = request.mine ?? 0
        let theirs = request.theirs ?? 0
        guard mine > 0 || theirs > 0 else { throw ControlFailure("a channel needs a deposit: MINE and THEIRS are both 0") }
        let game: Bool
        switch request.app?.lowercased() {
        case nil, "payment": game = false
        case "tictactoe": game = true
        case let other?: throw ControlFailure("unknown app '\(other)'; apps: payment, tictactoe")
        }
        let channel = try await node.open(
            with: peer, at: address, deposit: mine, theirs: theirs, app: game ? TicTacToe.id : .payment,
            appData: game ? TicTacToe.initialAppData : [], peerSigner: peerSigner)
        let status = try channel.status
        response.channel = channel.id.description
        response.peer = peer.humanForm
        response.version = status.latest.version
        response.balances = Self.balances(status.latest.state.allocation, me: status.me)
    }

    private func pay(_ request: ControlRequest, into response: inout ControlResponse) async throws {
        let channel = try await channel(request)
        guard let value = request.amount, value > 0 else {
            throw ControlFailure("AMOUNT must be a positive whole number (usage: \(ControlVerb.pay.usage))")
        }
        let count = request.count ?? 1
        guard count > 0 else { throw ControlFailure("COUNT must be at least 1 (usage: \(ControlVerb.pay.usage))") }
        // All of it or none: COUNT payments that cannot all be made are not started, so a
        // typo in COUNT does not drain the channel before failing.
        let status = try channel.status
        let (total, overflow) = value.multipliedReportingOverflow(by: Amount(UInt128(count)))
        if count > 1, overflow || total > status.myBalance {
            throw ControlFailure(
                "\(count) payments of \(value) need \(overflow ? "more than 2^128" : String(describing: total)), only \(status.myBalance) available in channel \(channel.id.shortID); nothing was paid",
                paid: 0)
        }
        var paid: UInt64 = 0
        var signed: SignedState?
        while paid < count {
            do { signed = try await channel.pay(value) } catch {
                throw ControlFailure(
                    "\(error)" + (paid > 0 ? " (after \(paid) of \(count) payments)" : ""), hint: Self.hint(for: error, verb: .pay),
                    paid: paid)
            }
            paid += 1
        }
        let latest = try signed ?? channel.status.latest
        response.channel = channel.id.description
        response.version = latest.version
        response.balances = Self.balances(latest.state.allocation, me: status.me)
        response.paid = paid
    }

    // MARK: - Describing

    public static func balances(_ allocation: Allocation, me: ParticipantIndex) -> ControlBalances {
        ControlBalances(me: allocation[me], peer: allocation[me.peer])
    }

    static func describe(_ status: ChannelStatus) -> ControlChannel {
        let word: ControlChannelStatus =
            if status.isClosed {
                status.isFunded ? .closed : .abandoned
            } else if !status.isFunded {
                status.closingReason == nil ? .funding : .abandoned
            } else if status.isClosing {
                .closing
            } else {
                .open
            }
        return ControlChannel(
            channel: status.id.description, peer: status.peer.humanForm, seat: Int(status.me.rawValue),
            version: status.latest.version, balances: balances(status.latest.state.allocation, me: status.me),
            status: word, phase: status.isClosed ? "closed" : status.phase.rawValue, funded: status.isFunded,
            closing: status.isClosing && !status.isClosed, closingReason: status.closingReason?.description,
            closed: status.isClosed, connected: status.isConnected)
    }

    /// What to do about a failure, where there is something to do.
    static func hint(for error: any Error, verb: ControlVerb) -> String? {
        guard let error = error as? NodeError else { return nil }
        switch error {
        case .peerUnreachable, .openTimedOut:
            return verb == .open ? "check the peer's PUBKEY@HOST:PORT and that its node is running" : nil
        case .peerUnresponsive:
            return "the peer is not answering: `dispute CHANNEL` leaves through the chain without it"
        case .notFunded:
            return "wait for the `funded` event (both deposits on chain), or see Docs/Troubleshooting.md"
        default:
            return nil
        }
    }

    // MARK: - Arguments

    static func publicKey(_ text: String) throws -> PublicKey {
        do {
            if text.utf8.count == 64, text.utf8.allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }) {
                return try PublicKey(hex: text)
            }
            return try PublicKey(humanForm: text)
        } catch {
            throw ControlFailure("bad public key '\(text)': \(error) (give the pk1… form or 64 hex digits)")
        }
    }

    /// The channel whose hex id is the request's `channel` or starts with it.
    private func channel(_ request: ControlRequest) async throws -> Channel {
        guard let text = request.channel else {
            throw ControlFailure("missing CHANNEL (usage: \(request.command.usage))")
        }
        let prefix = text.lowercased()
        guard prefix.count >= Self.minimumPrefixLength, prefix.allSatisfy(\.isHexDigit) else {
            throw ControlFailure(
                "'\(text)' is not a channel id: give the hex id or a unique prefix of at least \(Self.minimumPrefixLength) hex digits")
        }
        let matches = node.statuses.map(\.id).filter { $0.description.hasPrefix(prefix) }
        guard let id = matches.first else { throw ControlFailure("no channel id starts with \(prefix)", hint: "`status` lists the channels") }
        guard matches.count == 1 else { throw ControlFailure("\(prefix) matches \(matches.count) channels; give more digits") }
        guard let channel = await node.channel(id) else { throw NodeError.unknownChannel(id) }
        return channel
    }

    /// Runs `body`, failing with a hint once `limit` has passed (the body keeps running:
    /// a close that completes later still closes the channel).
    private func withDeadline<T: Sendable>(
        _ limit: Duration, what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        do { return try await ParleyLocks.withDeadline(limit, body) } catch is DeadlinePassed {
            throw ControlFailure(
                "no answer from the peer within \(limit) waiting for \(what)",
                hint: "the peer seems offline: `dispute CHANNEL` leaves through the chain without it")
        }
    }
}

/// A command that failed; `description` is what the answer's `error` says.
struct ControlFailure: Error, CustomStringConvertible {
    let description: String
    var hint: String?
    /// `pay`: how many payments went through.
    var paid: UInt64?
    init(_ description: String, hint: String? = nil, paid: UInt64? = nil) {
        self.description = description
        self.hint = hint
        self.paid = paid
    }
}

extension ControlResponse {
    func with(_ change: (inout ControlResponse) -> Void) -> ControlResponse {
        var copy = self
        change(&copy)
        return copy
    }
}
