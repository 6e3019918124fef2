import Foundation
import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyLocks
import ParleySettlement
import ParleySubprocess
import ParleyWire

/// Observing: the chain's events and the nodes' events, as lines of the drill's timeline.
extension DrillRun {
    /// Moves new node events and chain events into the timeline.
    func collectAll() {
        for peer in drill.peers {
            guard let node = nodes[peer.name] else { continue }
            for event in node.collectEvents() { describeNodeEvent(event, of: peer.name) }
        }
        let cursor = chainCursor
        let fresh = chainEvents.list.withLock { events in cursor < events.count ? Array(events[cursor...]) : [] }
        chainCursor += fresh.count
        for event in fresh where channelID == nil || event.channel == channelID {
            describeChainEvent(event)
        }
    }

    func name(of seat: ParticipantIndex) -> String { drill.peers[Int(seat.rawValue)].name }

    func describeChainEvent(_ event: ChainEvent) {
        let at = event.time.seconds
        switch event.kind {
        case let .registered(version, deadline, by):
            // A higher registration inside the window is a refutation of the one before.
            if let stale = registered, stale < version {
                note(.chain, from: name(of: by), to: "chain", "refuted stale version \(stale) with version \(version)",
                     emphasis: true, at: at)
            } else {
                note(.chain, from: name(of: by), to: "chain", "registered version \(version) (window until t=\(deadline.seconds))", at: at)
            }
            registered = version
        case let .progressed(version, deadline, mover):
            note(.chain, from: name(of: mover), to: "chain", "progressed to version \(version) (window until t=\(deadline.seconds))", at: at)
        case let .concluded(version, allocation):
            let shares = drill.peers.enumerated().map { "\($0.element.name) \(allocation.balances[$0.offset])" }
            note(.chain, from: "chain", "concluded at version \(version): \(shares.joined(separator: ", "))", at: at)
        case let .withdrawn(participant, amount):
            note(.chain, from: "chain", to: name(of: participant), "paid out \(amount)", at: at)
        case let .reclaimed(participant, amount):
            note(.chain, from: "chain", to: name(of: participant), "deposit of \(amount) reclaimed", at: at)
        case .deposited, .funded:
            break
        }
    }

    func describeNodeEvent(_ event: ControlEvent, of peer: String) {
        switch event.event {
        case .exitStarted:
            note(.note, from: peer, "watcher exits on chain with version \(event.version.map(String.init) ?? "?") (\(event.reason ?? ""))",
                 emphasis: true)
        case .peerSilent:
            note(.note, from: peer, "the other peer did not answer in time")
        default:
            break
        }
    }
}
