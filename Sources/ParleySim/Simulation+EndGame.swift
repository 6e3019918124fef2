import Logging
import ParleyChannel
@_spi(Simulation) import ParleyCrypto
import ParleyGames
import ParleyJournal
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyLocks
import ParleyWire

/// The end of a run: Mallory stops cooperating, every channel must settle within the bound,
/// and the oracle's checks.
extension Simulation {
    /// Mallory stops cooperating (she may still act on chain); the honest node is healed
    /// and asked to close everything. Within the bound every channel must be settled.
    func endGame() {
        guard let mallory else { return }
        // A third of the time she stays connected: she dials the node again at once and
        // accepts its dials, but answers nothing, so the node's waits for her `reestablish`
        // must end by themselves. Otherwise she is gone: link closed, dials refused.
        let staysConnected = choices.integer(in: 0...2) == 0
        box.note(.fault, staysConnected ? "heal: Mallory goes quiet, but stays connected" : "heal: Mallory goes quiet")
        mallory.quiet = true
        mallory.count(staysConnected ? .goQuietConnected : .goQuiet)
        chainFaults.set(down: false)
        outageUntil = nil
        network?.setMalloryReading(true, now: clock.now)
        readingResumes = nil
        dialsResume = nil
        restartAt = nil
        if crashed { restart() }
        if let link = mallory.link { network?.malloryClose(link) }
        if staysConnected {
            network?.setMalloryListening(true)
            _ = network?.malloryDial(now: clock.now)
        } else {
            network?.setMalloryListening(false)
        }
        let box = self.box
        // Half the time the user closes everything; the other half nobody asks, and the node
        // must get out by itself (its peer is gone: disconnect grace, funding timeout).
        let userCloses = choices.chance(0.5)
        box.note(.honest, userCloses ? "closes every channel" : "does nothing: the node is on its own")
        if let node, userCloses {
            for status in node.statuses where !status.isClosed {
                guard let channel = node.channels.first(where: { $0.id == status.id }) else { continue }
                let call = box.begin("close of \(status.id.shortID)", bound: Self.updateCallBound)
                Task {
                    defer { box.finish(call) }
                    do { _ = try await channel.close() } catch {
                        box.note(.honest, "close failed (\(error)); disputes")
                        try? await channel.dispute()
                    }
                }
            }
        }
        let challenge = Duration.seconds(Int64(config.challengeDuration))
        let bound = policy.proposalTimeout + policy.watcher.disconnectGrace + policy.watcher.fundingTimeout
            + challenge * 2 + .seconds(30)
        let deadline = clock.now + bound
        while clock.now < deadline {
            // Mallory may still do anything on chain while the honest node leaves.
            if choices.chance(0.2), let id = mallory.order.randomElement(using: &mallory.random) {
                let moves: [Mallory.Move] = [.registerStale, .conclude, .withdraw, .reclaim]
                mallory.chainMove(moves[choices.integer(in: 0...(moves.count - 1))], on: id)
            }
            settle(upTo: min(deadline, clock.now + .seconds(2)))
            box.checkCalls()
        }
        box.oracle?.checkConservation(chain.adjudicator.ledger)
        box.oracle?.checkSettled(chain.adjudicator.ledger, bound: bound)
    }

    /// One line for a message on the wire.
    static func summary(_ bytes: [UInt8]) -> String {
        guard let message = try? ChannelMessage(wireBytes: bytes) else { return "\(bytes.count) undecodable bytes" }
        let id = message.channelID.shortID
        switch message {
        case .openProposal: return "open \(id)"
        case .openAccept: return "open-accept \(id)"
        case let .propose(state, _): return "propose \(id) \(Oracle.describe(state))"
        case let .accept(_, version, _): return "accept \(id) v\(version)"
        case let .reject(_, version, reason): return "reject \(id) v\(version): \(reason)"
        case let .reestablish(_, committed, signed): return "reestablish \(id) c\(committed) s\(signed)"
        case let .commitProof(proof): return "commit-proof \(id) \(Oracle.describe(proof.state))"
        }
    }

    func randomDuration(upTo limit: Duration) -> Duration {
        .milliseconds(choices.integer(in: 0...max(0, Int(limit / .milliseconds(1)))))
    }
}

extension Simulation.Box {
    /// What the honest node reported, for the oracle and the coverage count.
    func record(_ event: NodeEvent) {
        let kind: String
        switch event {
        case let .opened(id, _):
            kind = "opened"
            oracle?.honestOpened(id)
            note(.honest, "channel \(id.shortID) open")
        case .funded: kind = "funded"
        case .proposed: kind = "proposed"
        case let .committed(id, state, mine):
            kind = mine ? "committed-mine" : "committed-theirs"
            let onChain = chain?.channel(id)
            let now = chain?.now.seconds ?? 0
            let honourable = onChain.map { channel in
                !channel.isConcluded && (channel.deadline.map { now + actionMargin < $0.seconds } ?? true)
            } ?? true
            oracle?.honestCommitted(state, honourable: honourable)
            oracle?.honestCommitted(state, onChain: onChain)
            note(.honest, "\(id.shortID) commits v\(state.version) \(state.state.allocation)\(state.state.isFinal ? " final" : "")")
        case let .rejected(_, _, reason, byPeer):
            kind = byPeer ? "rejected-by-peer" : "rejected-peer's"
            note(.honest, "rejected: \(reason)")
        case .peerConnected: kind = "peer-connected"
        case .peerDisconnected: kind = "peer-disconnected"
        case .peerSilent: kind = "peer-silent"
        case let .registered(id, version, _, by):
            kind = "registered"
            note(.chain, "\(id.shortID) registered v\(version) by \(by)")
        case .progressed: kind = "progressed"
        case .yourTurnOnChain: kind = "your-turn-on-chain"
        case let .refuted(id, stale, with):
            kind = "refuted"
            note(.chain, "\(id.shortID) honest refutes v\(stale) with v\(with)")
        case let .exitStarted(id, version, reason):
            kind = "exit-started"
            note(.chain, "\(id.shortID) honest exits with v\(version) (\(reason))")
        case let .concluded(id, version, allocation):
            kind = "concluded"
            note(.chain, "\(id.shortID) concluded v\(version) \(allocation)")
        case .withdrawn: kind = "withdrawn"
        case let .closed(id):
            kind = "closed"
            oracle?.honestClosed(id)
        case .abandoned: kind = "abandoned"
        case let .error(_, text):
            kind = "error"
            note(.honest, "error: \(text)")
        }
        result?.nodePaths[kind, default: 0] += 1
    }
}
