import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyNode
import ParleySettlement

/// Node events as control-protocol events.
public enum NodeEventLine {
    public static func render(_ event: NodeEvent, node: Node) async -> ControlEvent {
        let seat = { (id: ChannelID) in node.statuses.first { $0.id == id }?.me }
        func make(_ kind: ControlEventKind, _ id: ChannelID?) -> ControlEvent {
            ControlEvent(kind, channel: id?.description)
        }
        func left(_ deadline: ChainTime) async -> UInt64? {
            guard let now = try? await node.settlement.now() else { return nil }
            return deadline.seconds > now.seconds ? deadline.seconds - now.seconds : 0
        }
        switch event {
        case let .opened(id, peer):
            var line = make(.opened, id)
            line.peer = peer.humanForm
            return line
        case let .funded(id):
            return make(.funded, id)
        case let .proposed(id, version):
            var line = make(.proposed, id)
            line.version = version
            return line
        case let .committed(id, signed, mine):
            var line = make(.committed, id)
            line.version = signed.version
            line.mine = mine
            if let me = seat(id) { line.balances = NodeController.balances(signed.state.allocation, me: me) }
            return line
        case let .rejected(id, version, reason, byPeer):
            var line = make(.rejected, id)
            line.version = version
            line.reason = reason
            line.byPeer = byPeer
            return line
        case let .peerConnected(peer):
            var line = make(.peerConnected, nil)
            line.peer = peer.humanForm
            return line
        case let .peerDisconnected(peer, reason):
            var line = make(.peerDisconnected, nil)
            line.peer = peer.humanForm
            line.reason = reason
            return line
        case let .peerSilent(id):
            return make(.peerSilent, id)
        case let .registered(id, version, deadline, by), let .progressed(id, version, deadline, by):
            var line: ControlEvent
            if case .registered = event { line = make(.registered, id) } else { line = make(.progressed, id) }
            line.version = version
            line.deadline = deadline.seconds
            line.secondsLeft = await left(deadline)
            line.by = seat(id).map { $0 == by ? "me" : "peer" } ?? String(by.rawValue)
            return line
        case let .yourTurnOnChain(id, state, deadline):
            var line = make(.yourTurnOnChain, id)
            line.version = state.version
            line.deadline = deadline.seconds
            line.secondsLeft = await left(deadline)
            return line
        case let .refuted(id, stale, with):
            var line = make(.refuted, id)
            line.stale = stale
            line.version = with
            return line
        case let .exitStarted(id, version, reason):
            var line = make(.exitStarted, id)
            line.version = version
            line.reason = reason.rawValue
            return line
        case let .concluded(id, version, allocation):
            var line = make(.concluded, id)
            line.version = version
            if let me = seat(id) { line.balances = NodeController.balances(allocation, me: me) }
            return line
        case let .withdrawn(id, amount):
            var line = make(.withdrawn, id)
            line.amount = amount
            return line
        case let .closed(id):
            return make(.closed, id)
        case let .abandoned(id):
            return make(.abandoned, id)
        case let .error(id, message):
            var line = make(.error, id)
            line.error = message
            return line
        }
    }
}
