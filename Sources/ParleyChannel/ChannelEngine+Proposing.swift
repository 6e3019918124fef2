import ParleyCrypto
import ParleyWire

extension ChannelEngine {
    /// Proposes the next queued update when nothing else is in flight.
    ///
    /// Effects, in order: journal our signature, send the proposal. The
    /// version is one above every version either side has used, so a burned
    /// version is never reused.
    ///
    /// Payments that wait together go out together: when the next request is a payment,
    /// the payments queued right behind it ride in the same proposal, up to
    /// `maxPaymentsPerUpdate` and as long as their sum is affordable (see `riders(after:)`).
    /// The state pays their sum; each of their callers is settled by its commit or its
    /// failure. Nothing else changes: one proposal, one version, one signature.
    mutating func proposeNext(into effects: inout [Effect]) {
        if phase == .final {
            failQueued(.refused(.updateAfterFinal), into: &effects)
            return
        }
        while phase == .idle, !yieldingAfterTie, let head = queue.popFirst() {
            var (riders, total) = self.riders(after: head)
            let next: ChannelState
            do {
                if riders.isEmpty {
                    next = try successor(for: head.intent)
                } else if let coalesced = try? successor(for: .pay(amount: total)) {
                    next = coalesced
                } else {
                    // The sum breaks a rule the payments alone may not (an app's limit on
                    // one update): the head goes alone and the riders wait their turn.
                    for rider in riders.reversed() { queue.prepend(rider) }
                    riders = []
                    next = try successor(for: head.intent)
                }
            } catch {
                effects.append(.notify(.updateFailed(head.id, .refused(error))))
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
            outgoing = Outgoing(head: head, riders: riders, signed: signed, digest: digest)
            effects.append(.journal(.signed(signed)))
            effects.append(.send(.propose(state: next, signature: signature)))
        }
    }

    /// The payments queued right behind `head` that can ride in its proposal, and what
    /// `head` and they pay together: only when `head` is a payment on a channel that is not
    /// a turn-based game, neither is marked `alone`, and the running sum stays within our
    /// balance. The first request that is not such a payment, or that the balance cannot
    /// cover, ends the run; it and everything after it wait for the next proposal, so
    /// requests still commit in the order they were made and each is checked against the
    /// balance it would meet alone.
    mutating func riders(after head: Request) -> (riders: [Request], total: Amount) {
        guard maxPaymentsPerUpdate > 1, !head.alone, case let .pay(first) = head.intent,
              let next = queue.first, !next.alone, case .pay = next.intent,
              rules.mover(in: latest.state) == nil
        else { return ([], 0) }
        let available = latest.state.allocation[me]
        guard first <= available else { return ([], 0) }
        var total = first
        var riders: [Request] = []
        while riders.count + 1 < maxPaymentsPerUpdate, let candidate = queue.first, !candidate.alone,
              case let .pay(amount) = candidate.intent, amount <= available - total {
            total += amount
            riders.append(candidate)
            queue.removeFirst()
        }
        return (riders, total)
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
        effects.append(.notify(.committed(full, updates: pending.ids)))
    }

    /// The peer refused our proposal: its version is burned on both sides.
    mutating func receiveReject(_ version: UInt64, _ reason: RejectReason, into effects: inout [Effect]) {
        guard link == .up, let pending = outgoing, pending.version == version else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("reject for version \(version), not in flight"))))
            return
        }
        outgoing = nil
        effects.append(.journal(.aborted(version: version)))
        switch reason {
        case .concurrentProposal:
            break
        case .declined, .invalid:
            guard !pending.riders.isEmpty else {
                effects.append(.notify(.updateFailed(pending.head.id, .rejected(reason))))
                return
            }
            // The peer refused a batch of payments. It saw only their sum, so its answer says
            // nothing about any one of them: each is proposed again alone and gets the
            // verdict it would have got alone. A peer that refuses every batch costs a burned
            // version per batch and the batching, never a payment's outcome.
            for request in pending.requests.reversed() {
                var alone = request
                alone.alone = true
                queue.prepend(alone)
            }
            return
        case .channelFinal, .notReady:
            // The same answer awaits each of them alone: all fail with it.
            for id in pending.ids { effects.append(.notify(.updateFailed(id, .rejected(reason)))) }
            return
        }
        // Both proposed at once and both proposals are burned. The first seat
        // retries at once; the second waits, so the retries do not collide again.
        for request in pending.requests.reversed() { queue.prepend(request) }
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
        for request in pending.requests.reversed() { queue.prepend(request) }
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
