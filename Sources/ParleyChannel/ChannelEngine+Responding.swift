import ParleyCrypto

extension ChannelEngine {
    /// The peer proposes a new state.
    ///
    /// A proposal is checked in this order: our readiness, the proposer's
    /// signature, duplicates, a simultaneous proposal of ours, finality,
    /// version, then conservation and app rules. A validly signed proposal at
    /// the next version burns that version whatever we answer, exactly as the
    /// proposer burns it when it reads our rejection.
    mutating func receiveProposal(_ state: ChannelState, _ signature: StateSignature, into effects: inout [Effect]) {
        guard link == .up, latest.isFullySigned else {
            refuse(state.version, .notReady, because: .notReady("the channel is opening or reconnecting"), into: &effects)
            return
        }
        let digest = params.signingDigest(of: state)
        guard params.isValid(signature, of: digest, by: peer) else {
            refuse(state.version, because: .badSignature(signer: peer), into: &effects)
            return
        }
        if state == latest.state, let mine = latest[me] {
            // A replay of the proposal we already countersigned: answer it the same way again.
            effects.append(.send(.accept(channelID: params.id, version: state.version, signature: mine)))
            return
        }
        if incoming?.state == state { return }  // a duplicate of the one the handler is deciding
        let (expected, exhausted) = highestSeenVersion.addingReportingOverflow(1)
        let isNext = !exhausted && state.version == expected
        if isNext { highestSeenVersion = state.version }
        if outgoing != nil || incoming != nil {
            refuse(state.version, .concurrentProposal, because: nil, into: &effects)
            return
        }
        guard !latest.state.isFinal else {
            refuse(state.version, .channelFinal, because: .updateAfterFinal, into: &effects)
            return
        }
        guard isNext else {
            refuse(state.version, because: .versionMismatch(expected: expected, got: state.version), into: &effects)
            return
        }
        do { try validateSuccessor(state, mover: peer) } catch {
            refuse(state.version, because: error, into: &effects)
            return
        }
        var signed = SignedState(unsigned: state)
        signed[peer] = signature
        incoming = Incoming(signed: signed, digest: digest)
        effects.append(.decide(IncomingProposal(current: latest.state, proposed: state, proposer: peer, signature: signature)))
    }

    /// The update handler answered. A decision for a proposal no longer pending is ignored.
    ///
    /// Accepting: journal the fully-signed state, then send our signature, then tell the app.
    mutating func decide(_ version: UInt64, _ decision: Decision, into effects: inout [Effect]) {
        guard let pending = incoming, pending.version == version else { return }
        incoming = nil
        yieldingAfterTie = false  // the first seat has taken its turn
        switch decision {
        case .accept:
            let signature = key.signState(pending.digest)
            var full = pending.signed
            full[me] = signature
            effects.append(.journal(.committed(full)))
            adopt(full)
            effects.append(.send(.accept(channelID: params.id, version: version, signature: signature)))
            effects.append(.notify(.committed(full, updates: [])))
        case let .reject(why):
            effects.append(.send(.reject(channelID: params.id, version: version, reason: .declined(RejectReason.clip(why)))))
        }
    }

    private func refuse(
        _ version: UInt64, _ reason: RejectReason? = nil, because rejection: UpdateRejection?,
        into effects: inout [Effect]
    ) {
        let answer = reason ?? .invalid(rejection?.description ?? "invalid proposal")
        effects.append(.send(.reject(channelID: params.id, version: version, reason: answer)))
        if let rejection { effects.append(.notify(.refusedIncoming(rejection))) }
    }
}
