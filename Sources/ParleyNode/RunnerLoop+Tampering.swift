import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// Drills only: a deliberately malformed update (`Node.sendTampered`).
extension RunnerLoop {
    /// Builds and sends a malformed proposal (drills). Versions it signs are burned
    /// durably first, and the session is then dropped so the reestablish step tells the peer
    /// which versions we used; the peer must reject the proposal and keep its state.
    func tamper(_ kind: Tampering) async throws -> UInt64 {
        guard let session else { throw NodeError.peerUnreachable("no session with the peer right now") }
        let core = engine.engine
        guard core.latest.isFullySigned, core.phase == .idle else {
            throw NodeError.invalidParameters("the channel is busy (\(core.phase)); tamper when it is idle")
        }
        let me = core.me
        var next = core.latest.state
        next.version = core.highestSeenVersion + 1
        if next.allocation[me] > 0 {  // a one-unit payment to the peer, the most welcome kind
            next.allocation[me] -= 1
            next.allocation[me.peer] += 1
        }
        var reserve: UInt64?
        let message: ChannelMessage
        switch kind {
        case .badSignature:
            // A real signature of this state with its first byte flipped: well formed, and wrong.
            var bytes = context.sign(engine.engine.params, next).bytes
            bytes[0] ^= 0x01
            let forged: StateSignature = switch engine.engine.params.backendID {
            case .ed25519: .ed25519(try Signature(bytes: bytes))
            case .ethereum: .ethereum(try RecoverableSignature(bytes: bytes))
            }
            message = .propose(state: next, signature: forged)
        case .overspend:
            next = core.latest.state
            next.version = core.highestSeenVersion + 1
            next.allocation[me] = (core.latest.state.allocation.total ?? 0) &+ 1
            next.allocation[me.peer] = 0
            reserve = next.version
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .versionSkip:
            next.version += 2
            reserve = next.version
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .wrongChannel:
            next.channelID = ChannelID(digest: try Digest(bytes: SecureRandom.bytes(32)))
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .replay:
            guard let older = previousCommitted, let mine = older[me] else {
                throw NodeError.invalidParameters("nothing to replay yet: make two updates first")
            }
            next = older.state
            message = .propose(state: older.state, signature: mine)
        }
        if let reserve {
            // Journaled as signed, like everything we sign: a move on chain at that version
            // must then reuse it or refuse, never sign a second state there.
            var signed = SignedState(state: next)
            if case let .propose(_, signature) = message { signed[core.me] = signature }
            try await engine.reserveVersions(through: reserve, signed: signed)
        }
        try await session.send(message.wireBytes)
        context.logger.notice(
            "sent a tampered proposal", metadata: ["channel": "\(id.shortID)", "kind": "\(kind.rawValue)", "version": "\(next.version)"])
        if reserve != nil {
            let clock = context.clock
            Task {
                try? await clock.sleep(for: .milliseconds(200))
                session.close(reason: "resynchronising versions after a tampered proposal")
            }
        }
        return next.version
    }
}
