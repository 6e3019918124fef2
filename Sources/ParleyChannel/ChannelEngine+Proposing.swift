import ParleyCrypto

extension ChannelEngine {
    /// Proposes the next queued update when nothing else is in flight.
    ///
    /// Effects, in order: journal our signature, send the proposal. The
    /// version is one above every version either side has used, so a burned
    /// version is never reused.
    mutating func proposeNext(into effects: inout [Effect]) {
        if phase == .final {
            failQueued(.refused(.updateAfterFinal), into: &effects)
            return
        }
        while phase == .idle, !yieldingAfterTie, let request = queue.popFirst() {
            let next: ChannelState
            do { next = try successor(for: request.intent) } catch {
                effects.append(.notify(.updateFailed(request.id, .refused(error))))
                continue
            }
            let digest = params.signingDigest(of: next)
            let signature = key.signState(digest)
            var signed = SignedState(unsigned: next)
            signed[me] = signature
            highestSignedVersion = next.version
            highestSeenVersion = next.version
            if next.isFinal { uncommittedFinal = signed }
            noteSigned(signed)
            outgoing = Outgoing(id: request.id, intent: request.intent, signed: signed, digest: digest)
            effects.append(.journal(.signed(signed)))
            effects.append(.send(.propose(state: next, signature: signature)))
        }
    }

    /// The state `intent` asks for, built on the latest committed state and checked like a peer's proposal.
    func successor(for intent: UpdateIntent) throws(UpdateRejection) -> ChannelState {
        guard highestSeenVersion < UInt64.max else { throw .versionsExhausted }
        var next = latest.state
        next.version = highestSeenVersion + 1
        switch intent {
        case let .pay(amount):
            let available = next.allocation[me]
            guard amount <= available else { throw .insufficientFunds(available: available, requested: amount) }
            next.allocation[me] = available - amount
            next.allocation[peer] += amount  // cannot overflow: the total is conserved
        case let .replace(base, allocation, appData, isFinal):
            guard base == latest.version else { throw .staleBase(base: base, committed: latest.version) }
            next.allocation = allocation
            next.appData = appData
            next.isFinal = isFinal
        case .finalize:
            next.isFinal = true
        }
        if let mover = rules.mover(in: latest.state) {
            // A game: if it continues on chain from `latest`, our moves there are made at the
            // versions after it, and a version we sign off chain must never be one of them
            // with another state (invariant 1). The version right after `latest` is safe for
            // a move of ours (it is that move, reused on chain) or for a close on the peer's
            // turn (the peer moves there); any later one could be ours to move on chain.
            if next.isFinal && mover == me { throw .closeOnOwnTurn(version: latest.version) }
            if next.version != latest.version + 1 { throw .moveMustGoOnChain(version: latest.version + 1) }
        }
        try validateSuccessor(next, mover: me)
        return next
    }

    /// The peer countersigned our proposal.
    mutating func receiveAccept(_ version: UInt64, _ signature: StateSignature, into effects: inout [Effect]) {
        guard link == .up, let pending = outgoing, pending.version == version else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("accept for version \(version), not in flight"))))
            return
        }
        guard params.isValid(signature, of: pending.digest, by: peer) else {
            effects.append(.notify(.ignoredMessage(.badSignature(signer: peer))))
            return
        }
        var full = pending.signed
        full[peer] = signature
        outgoing = nil
        effects.append(.journal(.committed(full)))
        adopt(full)
        effects.append(.notify(.committed(full, update: pending.id)))
    }

    /// The peer refused our proposal: its version is burned on both sides.
    mutating func receiveReject(_ version: UInt64, _ reason: RejectReason, into effects: inout [Effect]) {
        guard link == .up, let pending = outgoing, pending.version == version else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("reject for version \(version), not in flight"))))
            return
        }
        outgoing = nil
        effects.append(.journal(.aborted(version: version)))
        guard reason == .concurrentProposal else {
            effects.append(.notify(.updateFailed(pending.id, .rejected(reason))))
            return
        }
        // Both proposed at once and both proposals are burned. The first seat
        // retries at once; the second waits, so the retries do not collide again.
        queue.prepend((pending.id, pending.intent))
        if me == .second {
            yieldingAfterTie = true
            effects.append(.scheduleRetry)
        }
    }

    /// Our proposal went unanswered: drop the session; reestablish decides whether it committed.
    mutating func timeOut(_ version: UInt64, into effects: inout [Effect]) {
        guard link == .up, outgoing?.version == version else { return }
        effects.append(.notify(.proposalTimedOut(version: version)))
        effects.append(.disconnect(.proposalTimeout(version: version)))
        goOffline()
    }

    /// Our pending proposal will never commit: burn it and queue its request again at the front.
    mutating func requeueOutgoing(into effects: inout [Effect]) {
        guard let pending = outgoing else { return }
        outgoing = nil
        effects.append(.journal(.aborted(version: pending.version)))
        queue.prepend((pending.id, pending.intent))
    }

    mutating func failQueued(_ failure: UpdateFailure, into effects: inout [Effect]) {
        for request in queue {
            effects.append(.notify(.updateFailed(request.id, failure)))
        }
        queue.removeAll()
    }
}

extension ChannelEngine {
    /// Marks every version up to `version` as used by us, as if we had signed it.
    ///
    /// For a node that sends a deliberately malformed proposal (drills' `tamper`): the
    /// version it signed must never be signed again (invariant 1). The caller journals
    /// `.aborted(version:)` first, which recovery counts as signed.
    package mutating func reserveVersions(through version: UInt64, signed: SignedState? = nil) {
        highestSignedVersion = max(highestSignedVersion, version)
        highestSeenVersion = max(highestSeenVersion, version)
        if let signed { noteSigned(signed) }
    }

    /// Our signature on `state`, a move we make on chain (`progress`), as a signed state to
    /// journal before the signature leaves; nil when we already signed exactly this state
    /// (its signature is returned instead, nothing new is signed).
    ///
    /// Moves on chain follow the same rule as updates (Docs/Protocol.md invariant 1): a version is
    /// signed once. A version at or below the highest we signed is refused unless it is
    /// the very state we signed then (say, our off-chain proposal of the same move).
    package mutating func signForChain(_ state: ChannelState) throws(UpdateRejection) -> (StateSignature, journal: SignedState?) {
        guard state.channelID == params.id else { throw .wrongChannel(expected: params.id, got: state.channelID) }
        // The version after `latest` is the only one a move on chain takes. We know whether we
        // signed there (`signedNext`: every state we sign is journaled and noted), so a version
        // the peer burned (its proposal we rejected) does not stop our move.
        let neverSignedThere = state.version == latest.version + 1 && signedNext == nil
        if state.version <= highestSignedVersion && !neverSignedThere {
            for candidate in [outgoing?.signed, latest, uncommittedFinal, signedNext] {
                if let candidate, candidate.state == state, let mine = candidate[me] { return (mine, nil) }
            }
            throw .versionAlreadySigned(state.version)
        }
        let signature = params.sign(state, with: key)
        var signed = SignedState(unsigned: state)
        signed[me] = signature
        highestSignedVersion = max(highestSignedVersion, state.version)
        highestSeenVersion = max(highestSeenVersion, state.version)
        noteSigned(signed)
        return (signed[me] ?? signature, signed)
    }
}
