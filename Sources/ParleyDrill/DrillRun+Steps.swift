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

/// Steps: each drill action performed on the nodes (over their control protocol) or the chain.
extension DrillRun {
    func perform(_ action: Drill.Action) async throws -> Outcome {
        var outcome = Outcome()
        func answer(_ node: NodeChild, _ command: String, timeout: Duration = .seconds(90)) async throws -> ControlResponse? {
            let reply = try await node.command(command, timeout: timeout)
            if reply.ok { return reply }
            outcome.refused = true
            outcome.error = reply.error ?? "refused"
            return nil
        }
        switch action {
        case let .pay(from, amount, count):
            let to = drill.other(than: from) ?? "?"
            let reply = try await answer(try node(from), "pay \(channel) \(amount) \(count)",
                                         timeout: .seconds(90) + .milliseconds(count * 20))
            let version = reply?.version.map { ", version \($0)" } ?? ""
            note(.message, from: from, to: to, "pay \(amount)\(count > 1 ? " ×\(count)" : "")\(version)")
            if let error = outcome.error { note(.note, from: from, "payment refused: \(error)", emphasis: true) }
            outcome.detail = "paid \(amount)\(count > 1 ? " × \(count)" : "")\(version)"
        case let .keep(peer, label):
            if let reply = try await answer(try node(peer), "state \(channel)"), let state = reply.state {
                kept[label] = state
                note(.note, from: peer, "keeps version \(reply.version.map(String.init) ?? "?") as `\(label)`")
                outcome.detail = "kept version \(reply.version.map(String.init) ?? "?")"
            }
        case let .register(peer, reference):
            let state: String
            switch reference {
            case .latest: state = "latest"
            case let .label(label):
                if let saved = kept[label] {
                    state = saved
                } else if let holder = heldBy[label] {
                    // A final state the holder countersigned in secret (`hold-final`).
                    guard let reply = try await answer(try node(holder), "held \(channel)"),
                        let saved = reply.state
                    else { throw DrillAbort("\(holder) holds no secretly countersigned final state for `\(label)`") }
                    kept[label] = saved
                    state = saved
                } else {
                    throw DrillAbort("no state kept as \(label)")
                }
            }
            // A kept (older) state is registered as a cheater would: the peer's own watcher
            // stands down, so the other peer's watcher is the one the drill tests.
            let command = reference == .latest ? "register" : "cheat"
            let reply = try await answer(try node(peer), "\(command) \(channel) \(state)")
            let what = reply?.version.map { "version \($0)" } ?? Self.label(reference)
            note(.chain, from: peer, to: "chain", "submits \(what)" + (outcome.error.map { " — refused: \($0)" } ?? ""),
                 emphasis: reference != .latest)
            outcome.detail = "submitted \(what)"
        case let .close(by):
            let closer = by ?? drill.peers[0].name
            note(.message, from: closer, to: drill.other(than: closer), "cooperative close")
            if let reply = try await answer(try node(closer), "close \(channel)") {
                outcome.detail = "closed at version \(reply.version.map(String.init) ?? "?")"
            }
        case let .dispute(peer):
            _ = try await answer(try node(peer), "dispute \(channel)")
            note(.note, from: peer, "asks its watcher to exit on chain")
        case let .silence(peer):
            _ = try await answer(try node(peer), "silence")
            note(.note, from: peer, "goes silent (drops everything, sends nothing)", emphasis: true)
        case let .wake(peer):
            _ = try await answer(try node(peer), "wake")
            note(.note, from: peer, "answers again")
        case .disconnect:
            for peer in drill.peers { _ = try await answer(try node(peer.name), "disconnect") }
            note(.note, from: drill.peers[0].name, to: drill.peers[1].name, "connection cut")
        case .reconnect:
            for peer in drill.peers { _ = try await answer(try node(peer.name), "reconnect") }
            note(.note, from: drill.peers[0].name, to: drill.peers[1].name, "connection allowed again")
        case let .crash(peer):
            try await node(peer).crash()
            note(.note, from: peer, DrillHTML.crashNote, emphasis: true)
        case let .restart(peer):
            try await node(peer).restart()
            note(.note, from: peer, DrillHTML.restartNote)
        case let .advance(seconds):
            do { chainTime = try await advanceChain(seconds) } catch {
                throw DrillAbort("advancing chain time failed: \(error)")
            }
            note(.time, from: "chain", "+\(seconds) s (chain time \(chainTime))")
            // Let the watchers see the new time before the next step.
            try await Task.sleep(for: .milliseconds(200))
        case let .tamper(from, kind):
            try await tamper(from: from, kind: kind, outcome: &outcome, answer: answer)
        case let .holdFinal(peer, label):
            _ = try await answer(try node(peer), "hold-finals on")
            heldBy[label] = peer
            note(.note, from: peer, "will countersign the next final state in secret and answer \"declined\"", emphasis: true)
        case let .move(peer, cell):
            let to = drill.other(than: peer) ?? "?"
            let reply = try await answer(try node(peer), "move \(channel) \(cell)")
            let version = reply?.version.map { ", version \($0)" } ?? ""
            note(.message, from: peer, to: to, "marks cell \(cell)\(version)")
            outcome.detail = "marked cell \(cell)\(version)"
        case let .progressFinal(peer):
            _ = try await answer(try node(peer), "progress-final \(channel)")
            note(.chain, from: peer, to: "chain", "progresses to a final copy of the registered state"
                 + (outcome.error.map { " — refused: \($0)" } ?? ""), emphasis: true)
        case .expect:
            break
        }
        return outcome
    }

    /// Sends the tampered update, then waits for the receiver to say no (an `error` or
    /// `rejected` event). Refused = the receiver reacted; `changedState` is judged after.
    func tamper(
        from: String, kind: String, outcome: inout Outcome,
        answer: (NodeChild, String, Duration) async throws -> ControlResponse?
    ) async throws {
        let receiverName = drill.other(than: from) ?? ""
        let receiver = try node(receiverName)
        receiver.collectEvents()
        let seen = receiver.events.count
        let reply = try await answer(try node(from), "tamper \(channel) \(kind)", .seconds(30))
        note(.message, from: from, to: receiverName,
             "tampered update (\(kind))" + (reply?.version.map { ", version \($0)" } ?? ""), emphasis: true)
        guard outcome.error == nil else { return }
        let end = ContinuousClock.now + .seconds(5)
        var reaction: String?
        while reaction == nil, ContinuousClock.now < end {
            receiver.collectEvents()
            reaction = receiver.events.dropFirst(seen).first { [.error, .rejected].contains($0.event) }
                .map { event in event.error ?? event.reason ?? "rejected" }
            if reaction == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        guard let reaction else {
            outcome.detail = "\(receiverName) did not react"
            return
        }
        outcome.refused = true
        outcome.error = "\(receiverName) rejected it: \(reaction)"
        note(.note, from: receiverName, "rejects it: \(reaction)")
        // The tamperer drops the session to resynchronise versions; wait for both to be back.
        try? await Task.sleep(for: .milliseconds(400))
    }

    static func label(_ reference: Drill.StateReference) -> String {
        switch reference {
        case .latest: "latest"
        case let .label(label): label
        }
    }
}
