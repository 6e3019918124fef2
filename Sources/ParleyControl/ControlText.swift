import ParleyWire

/// The human form of answers and events: what `parley node` prints on a terminal and
/// `parley ctl` prints without `--json`. Channel ids are cut to 8 digits, keys to their
/// first 12 characters; a failure says `error:` and its hint.
public enum ControlText {
    public static func short(_ channel: String?) -> String { channel.map { String($0.prefix(8)) } ?? "-" }

    static func shortKey(_ key: String?) -> String {
        guard let key else { return "-" }
        return key.count > 14 ? String(key.prefix(12)) + "…" : key
    }

    static func balances(_ balances: ControlBalances?) -> String {
        guard let balances else { return "" }
        return "me \(balances.me), peer \(balances.peer)"
    }

    static func window(_ deadline: UInt64?, _ secondsLeft: UInt64?) -> String {
        if let secondsLeft { return secondsLeft == 0 ? "the window has closed" : "the window closes in \(duration(secondsLeft))" }
        return deadline.map { "the window closes at chain time \($0)" } ?? ""
    }

    /// "9 s", "4 min 10 s", "2 h 5 min".
    public static func duration(_ seconds: UInt64) -> String {
        if seconds < 60 { return "\(seconds) s" }
        if seconds < 3600 { return "\(seconds / 60) min" + (seconds % 60 == 0 ? "" : " \(seconds % 60) s") }
        return "\(seconds / 3600) h" + ((seconds % 3600) / 60 == 0 ? "" : " \((seconds % 3600) / 60) min")
    }

    public static func render(_ response: ControlResponse) -> String {
        let tag = response.id.map { "[\($0)] " } ?? ""
        guard response.ok else {
            return "\(tag)\(response.command): error: \(response.error ?? "failed")" + (response.hint.map { "\n  hint: \($0)" } ?? "")
        }
        switch response.command {
        case ControlVerb.open.rawValue:
            return "\(tag)opened channel \(short(response.channel)) with \(shortKey(response.peer)): \(balances(response.balances))"
        case ControlVerb.pay.rawValue:
            let count = response.paid.map { $0 > 1 ? " (\($0) payments)" : "" } ?? ""
            return "\(tag)paid\(count) on \(short(response.channel)), version \(response.version ?? 0): \(balances(response.balances))"
        case ControlVerb.move.rawValue:
            return "\(tag)moved on \(short(response.channel)), version \(response.version ?? 0)"
        case ControlVerb.close.rawValue:
            return "\(tag)closed \(short(response.channel)) at version \(response.version ?? 0); \(response.payout ?? 0) paid to our chain account"
        case ControlVerb.dispute.rawValue:
            return "\(tag)registered version \(response.version ?? 0) of \(short(response.channel)) on chain; the watcher concludes when the window closes"
        case ControlVerb.balance.rawValue:
            return "\(tag)chain account \(response.chainBalance.map(String.init(describing:)) ?? "unknown"), in open channels \(response.inChannels ?? 0)"
        case ControlVerb.status.rawValue:
            var lines = [
                "\(tag)node \(response.key ?? "-") listening on \(response.listening ?? "nothing"), chain account \(response.chainBalance.map(String.init(describing:)) ?? "unknown")"
            ]
            let channels = response.channels ?? []
            if channels.isEmpty { lines.append("  no channels") }
            for channel in channels {
                lines.append(
                    "  \(short(channel.channel))  \(channel.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) v\(channel.version)  \(balances(channel.balances))  peer \(shortKey(channel.peer))\(channel.connected ? "" : " (offline)")"
                )
            }
            return lines.joined(separator: "\n")
        case ControlVerb.state.rawValue, ControlVerb.held.rawValue:
            return "\(tag)version \(response.version ?? 0) of \(short(response.channel)): \(response.state ?? "")"
        case ControlVerb.help.rawValue:
            let commands = response.commands ?? []
            let width = commands.map(\.usage.count).max() ?? 0
            var lines = ["\(tag)commands (CHANNEL: the channel id or a unique prefix of at least 8 hex digits):"]
            for command in commands where !command.drill {
                lines.append("  \(command.usage.padding(toLength: width, withPad: " ", startingAt: 0))  \(command.summary)")
            }
            lines.append("for drills:")
            for command in commands where command.drill {
                lines.append("  \(command.usage.padding(toLength: width, withPad: " ", startingAt: 0))  \(command.summary)")
            }
            return lines.joined(separator: "\n")
        default:
            return "\(tag)\(response.command): ok" + (response.channel.map { " (\(short($0)))" } ?? "")
        }
    }

    public static func render(_ event: ControlEvent) -> String {
        let channel = short(event.channel)
        switch event.event {
        case .ready:
            // The whole key: the tour has the other terminal paste it into `open`.
            return "ready: node \(event.key ?? "-") listening on \(event.listening ?? "nothing"), \(event.channels ?? 0) channel(s) from the journal"
        case .opened: return "* channel \(channel) opened with \(shortKey(event.peer))"
        case .funded: return "* channel \(channel) funded: payments may flow"
        case .abandoned: return "* channel \(channel) was never funded and is given up; any deposit of ours is reclaimed"
        case .proposed: return "* \(channel): the peer proposes version \(event.version ?? 0)"
        case .committed:
            return "* \(channel) v\(event.version ?? 0) \(event.mine == true ? "(ours)" : "(the peer's)"): \(balances(event.balances))"
        case .rejected:
            return "* \(channel): version \(event.version.map(String.init) ?? "?") rejected \(event.byPeer == true ? "by the peer" : "by us"): \(event.reason ?? "")"
        case .peerConnected: return "* connected to \(shortKey(event.peer))"
        case .peerDisconnected: return "* disconnected from \(shortKey(event.peer)): \(event.reason ?? "")"
        case .peerSilent: return "* \(channel): the peer did not answer in time"
        case .registered:
            return "* \(channel): version \(event.version ?? 0) registered on chain by \(event.by ?? "?"); \(window(event.deadline, event.secondsLeft))"
        case .progressed:
            return "* \(channel): version \(event.version ?? 0) moved on chain by \(event.by ?? "?"); \(window(event.deadline, event.secondsLeft))"
        case .yourTurnOnChain:
            return "* \(channel): our move on chain; \(window(event.deadline, event.secondsLeft))"
        case .refuted: return "* \(channel): stale version \(event.stale ?? 0) refuted with version \(event.version ?? 0)"
        case .exitStarted: return "* \(channel): leaving on chain with version \(event.version ?? 0) (\(event.reason ?? ""))"
        case .concluded: return "* \(channel): concluded at version \(event.version ?? 0): \(balances(event.balances))"
        case .withdrawn: return "* \(channel): \(event.amount ?? 0) paid to our chain account"
        case .closed: return "* \(channel) closed"
        case .error: return "* \(event.channel == nil ? "node" : channel): error: \(event.error ?? "")"
        }
    }
}
