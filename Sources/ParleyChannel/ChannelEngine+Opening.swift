import ParleyCrypto
import ParleyWire

extension ChannelEngine {
    /// Proposes a new channel; we take the first seat.
    ///
    /// Returns the engine in `.opening` and the effects: journal the
    /// parameters and our signature on version 0, then send the proposal.
    package static func propose(
        params: ChannelParams, allocation: Allocation, appData: [UInt8] = [],
        key: any StateSigner, rules: any AppRules = PaymentApp()
    ) throws(OpenRejection) -> (ChannelEngine, [Effect]) {
        guard params.signer(.first) == key.settlementAddress else { throw .notAParticipant(role: "proposer (first seat)") }
        let initial = ChannelState(channelID: params.id, version: 0, allocation: allocation, appData: appData)
        try validateOpening(initial, params: params, rules: rules)
        let signature = params.sign(initial, with: key)
        var signed = SignedState(state: initial)
        signed[.first] = signature
        let engine = ChannelEngine(params: params, me: .first, key: key, rules: rules, latest: signed)
        let proposal = OpenProposal(params: params, initial: initial, signature: signature)
        return (engine, [
            .journal(.opened(params, funding: allocation)), .journal(.signed(signed)), .send(.openProposal(proposal)),
        ])
    }

    /// Accepts a peer's channel proposal; we take the second seat.
    ///
    /// Call only after the app agreed to the channel. Returns the engine in
    /// `.idle` and the effects: journal the parameters and the fully-signed
    /// version 0, tell the app, then send our signature. The app hears of the
    /// channel before the peer can act on it, so `opened` comes before any event
    /// the peer's reply causes (funding, its first update).
    package static func accept(
        _ proposal: OpenProposal, key: any StateSigner, rules: any AppRules = PaymentApp()
    ) throws(OpenRejection) -> (ChannelEngine, [Effect]) {
        let params = proposal.params
        guard params.signer(.second) == key.settlementAddress else { throw .notAParticipant(role: "responder (second seat)") }
        try validateOpening(proposal.initial, params: params, rules: rules)
        guard params.isSigned(proposal.initial, by: .first, with: proposal.signature) else {
            throw .invalidInitialState(.badSignature(signer: .first))
        }
        let signature = params.sign(proposal.initial, with: key)
        let signed = SignedState(state: proposal.initial, signatures: [proposal.signature, signature])
        let engine = ChannelEngine(params: params, me: .second, key: key, rules: rules, latest: signed)
        return (engine, [
            .journal(.opened(params, funding: proposal.initial.allocation)), .journal(.committed(signed)),
            .notify(.opened(signed)), .send(.openAccept(channelID: params.id, signature: signature)),
        ])
    }

    private static func validateOpening(
        _ initial: ChannelState, params: ChannelParams, rules: any AppRules
    ) throws(OpenRejection) {
        guard rules.appID == params.appID else { throw .wrongApp(channel: params.appID, rules: rules.appID) }
        guard initial.channelID == params.id else {
            throw .invalidInitialState(.wrongChannel(expected: params.id, got: initial.channelID))
        }
        guard initial.version == 0 else { throw .invalidInitialState(.versionMismatch(expected: 0, got: initial.version)) }
        guard !initial.isFinal else { throw .invalidInitialState(.updateAfterFinal) }
        guard initial.allocation.total != nil else { throw .invalidInitialState(.balanceOverflow) }
        let appDataLimit = min(WireLimits.maxAppDataBytes, params.backend.maxAppDataBytes)
        guard initial.appData.count <= appDataLimit else {
            throw .invalidInitialState(.appDataTooLarge(bytes: initial.appData.count, limit: appDataLimit))
        }
        do { try rules.validateInitial(initial) } catch {
            throw .invalidInitialState(.appRuleViolated(error.reason))
        }
    }

    /// Opener: the peer countersigned version 0.
    mutating func receiveOpenAccept(_ signature: StateSignature, into effects: inout [Effect]) {
        guard phase == .opening else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("open accept for an open channel"))))
            return
        }
        guard params.isSigned(latest.state, by: peer, with: signature) else {
            effects.append(.notify(.ignoredMessage(.badSignature(signer: peer))))
            return
        }
        var signed = latest
        signed[peer] = signature
        effects.append(.journal(.committed(signed)))
        adopt(signed)
        link = .up
        effects.append(.notify(.opened(signed)))
    }

    /// Responder: the opener resent its proposal after a reconnect, so our accept was lost.
    mutating func receiveDuplicateOpen(_ proposal: OpenProposal, into effects: inout [Effect]) {
        guard me == .second, latest.version == 0, proposal.initial == latest.state,
            proposal.signature == latest[.first], let mine = latest[me]
        else {
            effects.append(.notify(.ignoredMessage(.unexpectedMessage("open proposal for an open channel"))))
            return
        }
        // The opener sends this instead of `reestablish`: it has committed nothing, so
        // any proposal of ours is burned (our own reestablish tells it which versions).
        let wasSyncing = link == .awaitingPeer
        if wasSyncing {
            requeueOutgoing(into: &effects)
            link = .up
        }
        effects.append(.send(.openAccept(channelID: params.id, signature: mine)))
        if wasSyncing { effects.append(.notify(.reestablished(committedVersion: latest.version))) }
    }

    /// The message that (re)starts the opening handshake, while we are the opener.
    var openProposalMessage: ChannelMessage? {
        guard phase == .opening, let signature = latest[me] else { return nil }
        return .openProposal(OpenProposal(params: params, initial: latest.state, signature: signature))
    }
}

extension ChannelEngine {
    /// Rebuilds an engine from a journal's recovered state after a restart.
    ///
    /// `latest` is the newest fully-signed state (or, for an opener whose
    /// accept never arrived, version 0 with only our signature);
    /// `highestSignedVersion` is the highest version we ever signed, so the
    /// engine resumes above it and never signs a second state of any version;
    /// `signedFinal` is a final state we signed that did not commit (the channel then only closes).
    /// The connection starts down: deliver `.connected` to reestablish.
    public static func restore(
        params: ChannelParams, latest: SignedState, highestSignedVersion: UInt64,
        signedFinal: SignedState? = nil, signedNext: SignedState? = nil, key: any StateSigner,
        rules: any AppRules = PaymentApp()
    ) throws(OpenRejection) -> ChannelEngine {
        guard let me = params.index(ofSigner: key.settlementAddress) else { throw .notAParticipant(role: "participant") }
        guard rules.appID == params.appID else { throw .wrongApp(channel: params.appID, rules: rules.appID) }
        do { try latest.verify(against: params, requireBoth: latest.isFullySigned) } catch {
            throw .invalidInitialState(error)
        }
        guard latest.isFullySigned || (latest.version == 0 && me == .first && latest[me] != nil) else {
            throw .invalidInitialState(.missingSignature(signer: latest[.first] == nil ? .first : .second))
        }
        var engine = ChannelEngine(params: params, me: me, key: key, rules: rules, latest: latest)
        engine.highestSignedVersion = max(latest.version, highestSignedVersion)
        engine.highestSeenVersion = engine.highestSignedVersion
        if let signedFinal, signedFinal.version > latest.version, signedFinal.state.isFinal {
            // The peer may hold it countersigned: the channel still only closes (see `uncommittedFinal`).
            engine.uncommittedFinal = signedFinal
            engine.highestSignedVersion = max(engine.highestSignedVersion, signedFinal.version)
            engine.highestSeenVersion = engine.highestSignedVersion
        }
        if let signedNext, signedNext.version == latest.version + 1, signedNext[me] != nil,
            signedNext.state.channelID == params.id
        {
            engine.signedNext = signedNext
        }
        engine.link = .down
        return engine
    }
}
