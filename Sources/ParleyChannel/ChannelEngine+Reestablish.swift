extension ChannelEngine {
    /// The session closed: updates queue until the next one. An undecided
    /// incoming proposal is dropped (we never signed it); our own pending
    /// proposal stays until reestablish tells whether the peer committed it.
    mutating func goOffline() {
        guard link != .down else { return }
        link = .down
        incoming = nil
        yieldingAfterTie = false
    }

    /// A new session is up: the opener restarts the opening handshake, everyone else says where they are.
    mutating func reconnect(into effects: inout [Effect]) {
        guard link == .down else { return }
        if let resend = openProposalMessage {
            link = .up
            effects.append(.send(resend))
            return
        }
        link = .awaitingPeer
        effects.append(.send(.reestablish(
            channelID: params.id, committedVersion: latest.version, highestSignedVersion: highestSignedVersion)))
    }

    /// The peer's latest committed and highest signed versions.
    ///
    /// - Whoever holds the newer fully-signed state sends it (`commitProof`);
    ///   the other waits for it before proposing anything.
    /// - Our pending proposal committed only if the peer's committed version
    ///   reached it; otherwise it is burned and its request goes out again at
    ///   a fresh version.
    /// - Versions the peer signed but we never saw count as used.
    mutating func receiveReestablish(peerCommitted: UInt64, peerSigned: UInt64, into effects: inout [Effect]) {
        let ceiling = max(latest.version, peerCommitted).addingReportingOverflow(Self.maxBurnedVersions)
        guard peerSigned >= peerCommitted, ceiling.overflow || peerSigned <= ceiling.partialValue else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage(
                "peer claims to have signed version \(peerSigned) with version \(peerCommitted) committed"))))
            return
        }
        if phase == .opening, peerCommitted == 0 {
            // The responder reconnected before our resent open proposal reached it. Its
            // accept follows; until then, only learn which versions it has already burned.
            highestSeenVersion = max(highestSeenVersion, peerSigned)
            return
        }
        guard link == .awaitingPeer, phase != .opening else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("reestablish outside a reconnect"))))
            return
        }
        highestSeenVersion = max(highestSeenVersion, peerSigned)
        if let pending = outgoing, peerCommitted < pending.version {
            requeueOutgoing(into: &effects)
        }
        if peerCommitted > latest.version {
            link = .awaitingProof(peerCommitted)
            return
        }
        if peerCommitted < latest.version {
            effects.append(.send(.commitProof(latest)))
        }
        link = .up
        effects.append(.notify(.reestablished(committedVersion: latest.version)))
    }

    /// The peer proves, with both signatures, a newer state than ours: believe it.
    ///
    /// Effects: journal it as committed, then report it (settling our own
    /// pending proposal when it is the same state).
    mutating func receiveProof(_ signed: SignedState, into effects: inout [Effect]) {
        guard case let .awaitingProof(announced) = link else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("commit proof without a reestablish asking for it"))))
            return
        }
        do { try validateProof(signed, announced: announced) } catch {
            effects.append(.notify(.ignoredMessage(error)))
            return
        }
        effects.append(.journal(.committed(signed)))
        adopt(signed)
        var settled: [UpdateID] = []
        if let pending = outgoing {
            if pending.signed.state == signed.state {
                settled = pending.ids
                outgoing = nil
            } else if pending.version <= signed.version {
                requeueOutgoing(into: &effects)
            }
        }
        link = .up
        effects.append(.notify(.committed(signed, updates: settled)))
        effects.append(.notify(.reestablished(committedVersion: latest.version)))
    }

    private func validateProof(_ signed: SignedState, announced: UInt64) throws(UpdateRejection) {
        try signed.verify(against: params)
        guard signed.version == announced else {
            throw .versionMismatch(expected: announced, got: signed.version)
        }
        guard let total = signed.state.allocation.total else { throw .balanceOverflow }
        guard total == fundedTotal else { throw .balanceNotConserved(total: fundedTotal, proposed: total) }
    }
}
