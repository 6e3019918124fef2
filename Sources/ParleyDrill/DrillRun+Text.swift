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

/// How actions and expectations read in the timeline.
extension DrillRun {
    static func describe(_ action: Drill.Action) -> String {
        switch action {
        case let .pay(from, amount, count): "pay {from: \(from), amount: \(amount)\(count > 1 ? ", count: \(count)" : "")}"
        case let .keep(peer, label): "keep {peer: \(peer), as: \(label)}"
        case let .register(peer, state): "register {peer: \(peer), state: \(label(state))}"
        case let .close(by): by.map { "close {peer: \($0)}" } ?? "close"
        case let .dispute(peer): "dispute {peer: \(peer)}"
        case let .silence(peer): "silence \(peer)"
        case let .wake(peer): "wake \(peer)"
        case .disconnect: "disconnect"
        case .reconnect: "reconnect"
        case let .crash(peer): "crash \(peer)"
        case let .restart(peer): "restart \(peer)"
        case let .advance(seconds): "advance \(seconds)"
        case let .tamper(from, kind): "tamper {from: \(from), kind: \(kind)}"
        case let .holdFinal(peer, label): "hold-final {peer: \(peer), as: \(label)}"
        case let .move(peer, cell): "move {peer: \(peer), cell: \(cell)}"
        case let .progressFinal(peer): "progress-final \(peer)"
        case let .expect(expectation): "expect " + describe(expectation)
        }
    }

    static func describe(_ expectation: Drill.Expectation) -> String {
        func amounts(_ map: [String: UInt64]) -> String {
            "{" + map.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
        var parts: [String] = []
        if expectation.chainVersion != nil || expectation.chainPhase != nil {
            let fields = [expectation.chainVersion.map { "version: \($0)" }, expectation.chainPhase.map { "phase: \($0)" }]
            parts.append("chain: {\(fields.compactMap { $0 }.joined(separator: ", "))}")
        }
        if let payout = expectation.payout { parts.append("payout: \(amounts(payout))") }
        if let peer = expectation.peer {
            var fields = ["name: \(peer.name)"]
            if let version = peer.version { fields.append("version: \(version)") }
            if let balances = peer.balances { fields.append("balances: \(amounts(balances))") }
            parts.append("peer: {\(fields.joined(separator: ", "))}")
        }
        if let rejected = expectation.rejected { parts.append("rejected: \(rejected)") }
        if let error = expectation.error { parts.append("error: \(error)") }
        return "{\(parts.joined(separator: ", "))}"
    }
}
