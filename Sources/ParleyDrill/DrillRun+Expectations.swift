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

/// Expectations: what each node, the chain and the payouts must show, checked with deadlines.
extension DrillRun {
    /// Each running peer's view of the channel.
    func views() async throws -> [String: PeerView] {
        var result: [String: PeerView] = [:]
        for peer in drill.peers {
            guard let node = nodes[peer.name], node.isRunning else { continue }
            if let view = try await view(of: peer.name, node) { result[peer.name] = view }
        }
        return result
    }

    func view(of name: String, _ node: NodeChild) async throws -> PeerView? {
        let status = try await node.command("status")
        guard let entry = status.channels?.first(where: { $0.channel == channel }),
            let me = UInt64(exactly: entry.balances.me.value), let other = UInt64(exactly: entry.balances.peer.value)
        else { return nil }
        let version = entry.version
        let seat = drill.seat(of: name) ?? .first
        return PeerView(version: version, balances: seat == .first ? [me, other] : [other, me])
    }

    func check(_ expectation: Drill.Expectation, previous: Outcome?) async -> (Bool, String) {
        var problems: [String] = []
        let wasRefused = previous.map { $0.refused || $0.error != nil } ?? false
        if let rejected = expectation.rejected {
            if rejected {
                if !wasRefused { problems.append("the previous step was not refused (\(previous?.detail ?? "no previous step"))") }
                if previous?.changedState == true { problems.append("the previous step was refused but state changed") }
            } else if wasRefused {
                problems.append("the previous step was refused: \(previous?.error ?? "")")
            }
        }
        if let text = expectation.error {
            let message = previous?.error ?? ""
            if !message.localizedCaseInsensitiveContains(text) {
                problems.append(message.isEmpty ? "the previous step had no error (expected one containing “\(text)”)"
                    : "the error was “\(message)”, which does not contain “\(text)”")
            }
        }
        guard problems.isEmpty else { return (false, problems.joined(separator: "; ")) }
        let aboutTheWorld = expectation.chainVersion != nil || expectation.chainPhase != nil || expectation.payout != nil
            || expectation.peer != nil
        guard aboutTheWorld else { return (true, "held") }
        // Watchers act on their own; give them time before judging.
        let end = ContinuousClock.now + options.settleTimeout
        while true {
            collectAll()
            let failures: [String]
            do { failures = try await worldProblems(expectation) } catch { failures = ["\(error)"] }
            if failures.isEmpty { return (true, "held") }
            if ContinuousClock.now >= end { return (false, failures.joined(separator: "; ")) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// What the chain shows for the channel, as plain values.
    struct ChainView {
        var registeredVersion: UInt64?
        var phase: String
        var payout: Allocation?
    }

    func chainView(_ id: ChannelID) async throws -> ChainView {
        guard let chain else { throw DrillAbort("no chain") }
        guard let onChain = try await chain.channel(id) else { return ChainView(registeredVersion: nil, phase: "none") }
        return ChainView(
            registeredVersion: onChain.registeredVersion, phase: onChain.phase.rawValue, payout: onChain.concludedAllocation)
    }

    func worldProblems(_ expectation: Drill.Expectation) async throws -> [String] {
        var problems: [String] = []
        guard let id = channelID else { return ["no channel"] }
        let onChain = try await chainView(id)
        if let version = expectation.chainVersion, onChain.registeredVersion != version {
            problems.append("chain version is \(onChain.registeredVersion.map(String.init) ?? "none"), expected \(version)")
        }
        if let phase = expectation.chainPhase, onChain.phase != phase {
            problems.append("chain phase is \(onChain.phase), expected \(phase)")
        }
        if let payout = expectation.payout {
            if let allocation = onChain.payout {
                for (peer, amount) in payout.sorted(by: { $0.key < $1.key }) {
                    let seat = drill.seat(of: peer) ?? .first
                    if allocation[seat] != Amount(amount) { problems.append("\(peer) is paid \(allocation[seat]), expected \(amount)") }
                }
            } else {
                problems.append("the channel is not settled on chain yet (phase \(onChain.phase))")
            }
        }
        if let peer = expectation.peer {
            guard let node = nodes[peer.name], node.isRunning else { return problems + ["\(peer.name) is not running"] }
            guard let view = try await view(of: peer.name, node) else { return problems + ["\(peer.name) has no such channel"] }
            if let version = peer.version, view.version != version {
                problems.append("\(peer.name) is at version \(view.version), expected \(version)")
            }
            for (name, amount) in (peer.balances ?? [:]).sorted(by: { $0.key < $1.key }) {
                let actual = view.balances[Int((drill.seat(of: name) ?? .first).rawValue)]
                if actual != amount { problems.append("\(peer.name) sees \(name) with \(actual), expected \(amount)") }
            }
        }
        return problems
    }

    func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DrillAbort("timed out waiting for \(what)")
    }
}
