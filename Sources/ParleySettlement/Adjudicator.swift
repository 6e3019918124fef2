import ParleyChannel
import ParleyCrypto
import ParleyWire

/// The settlement rules as a deterministic value: no clock, no I/O.
///
/// The caller supplies the time and the caller's identity with every
/// transaction, so the same transactions at the same times always produce
/// the same ledger and the same events. `LocalChain` wraps one in a lock;
/// the devchain daemon replays its persisted transactions into one.
/// Rules and errors: Docs/Settlement.md.
public struct Adjudicator: Sendable {
    /// Accounts, channels and events: the whole state the rules act on.
    public private(set) var ledger = Ledger()
    /// The app rules `progress` consults, by app id.
    let apps: [AppID: any AppRules]
    /// The chain these rules run on: deposits for channels bound to any other are refused,
    /// so a state signed for one chain can never be used on another.
    public let domain: SettlementDomain

    /// `PaymentApp` is always known; `apps` add to it (or replace it, for the same id).
    public init(apps: [any AppRules] = [], domain: SettlementDomain = .embedded) {
        var registry: [AppID: any AppRules] = [AppID.payment: PaymentApp()]
        for app in apps { registry[app.appID] = app }
        self.apps = registry
        self.domain = domain
    }

    /// Performs `tx` as `caller` at chain time `now` and returns the events it caused, in order.
    ///
    /// Atomic: when it throws, the ledger is exactly as before. Every handler
    /// checks all of its rules before its first mutation.
    public mutating func apply(
        _ tx: ChainTransaction, caller: PublicKey, now: ChainTime
    ) throws(SettlementError) -> [ChainEvent] {
        switch tx {
        case let .mint(account, amount):
            try mint(amount, to: account)
            return []
        case let .deposit(params, opening, participant, amount):
            return try deposit(params, opening, participant, amount, caller: caller, now: now)
        case let .reclaim(id):
            return try reclaim(id, caller: caller, now: now)
        case let .register(signed):
            return try register(signed, caller: caller, now: now)
        case let .progress(id, state, signature):
            return try progress(id, to: state, signature: signature, caller: caller, now: now)
        case let .conclude(id):
            return try conclude(id, now: now)
        case let .withdraw(id, participant):
            return try withdraw(id, participant, caller: caller, now: now)
        }
    }

    /// The account's balance outside any channel; 0 for an account never seen.
    public func balance(of account: PublicKey) -> Amount { ledger.balance(of: account) }

    /// The channel's snapshot, or `nil` if no deposit ever named it.
    public func channel(_ id: ChannelID) -> ChannelOnChain? { ledger.channels[id] }

    /// Up to `limit` events with a sequence greater than `sequence`, in order.
    public func events(after sequence: UInt64, limit: Int = .max) -> [ChainEvent] {
        let events = ledger.events
        guard sequence < UInt64(events.count), limit > 0 else { return [] }
        let start = Int(sequence)
        return Array(events[start..<start + min(limit, events.count - start)])
    }

    /// The sequence of the newest event; 0 before the first.
    public var lastSequence: UInt64 { UInt64(ledger.events.count) }

    func existing(_ id: ChannelID) throws(SettlementError) -> ChannelOnChain {
        guard let channel = ledger.channels[id] else { throw .unknownChannel(id) }
        return channel
    }
}

// MARK: - Money in and out

extension Adjudicator {
    mutating func mint(_ amount: Amount, to account: PublicKey) throws(SettlementError) {
        guard amount > 0 else { throw .zeroAmount }
        let (supply, overflow) = ledger.totalMinted.addingReportingOverflow(amount)
        guard !overflow else { throw .balanceOverflow }
        // Every balance is at most the supply, so it cannot overflow once the supply does not.
        ledger.totalMinted = supply
        ledger.setBalance(ledger.balance(of: account) + amount, of: account)
    }

    mutating func deposit(
        _ params: ChannelParams, _ opening: Allocation, _ participant: ParticipantIndex, _ amount: Amount,
        caller: PublicKey, now: ChainTime
    ) throws(SettlementError) -> [ChainEvent] {
        guard params.domain == domain else { throw .wrongDomain(expected: domain, got: params.domain) }
        guard params[participant] == caller else { throw .notAParticipant(caller, params.id) }
        guard amount > 0 else { throw .zeroAmount }
        guard let fundedTotal = opening.total else { throw .balanceOverflow }
        var channel = ledger.channels[params.id]
            ?? ChannelOnChain(params: params, opening: opening, fundedTotal: fundedTotal)
        guard channel.opening == opening else { throw .openingMismatch(channel: channel.opening, got: opening) }
        guard !channel.isFunded else { throw .alreadyFunded }
        guard !channel.depositsClosed else { throw .depositsClosed }
        let deposited = channel.deposits[participant]
        let required = channel.opening[participant]
        guard amount <= required - deposited else {
            throw .overDeposit(participant: participant, deposited: deposited, amount: amount, required: required)
        }
        let has = ledger.balance(of: caller)
        guard has >= amount else { throw .insufficientBalance(account: caller, has: has, needs: amount) }

        ledger.setBalance(has - amount, of: caller)
        channel.deposits[participant] = deposited + amount
        var events = [
            ledger.emit(
                .deposited(participant: participant, amount: amount, totalDeposited: deposited + amount),
                channel: params.id, at: now)
        ]
        if channel.deposits == channel.opening {
            channel.isFunded = true
            events.append(ledger.emit(.funded, channel: params.id, at: now))
        }
        ledger.channels[params.id] = channel
        return events
    }

    mutating func reclaim(_ id: ChannelID, caller: PublicKey, now: ChainTime) throws(SettlementError) -> [ChainEvent] {
        var channel = try existing(id)
        let seat = try channel.seat(of: caller)
        guard !channel.isFunded else { throw .alreadyFunded }
        let amount = channel.deposits[seat]
        guard amount > 0 else { throw .nothingToReclaim(seat) }

        channel.deposits[seat] = 0
        channel.depositsClosed = true
        ledger.channels[id] = channel
        ledger.setBalance(ledger.balance(of: caller) + amount, of: caller)
        return [ledger.emit(.reclaimed(participant: seat, amount: amount), channel: id, at: now)]
    }

    mutating func withdraw(
        _ id: ChannelID, _ participant: ParticipantIndex, caller: PublicKey, now: ChainTime
    ) throws(SettlementError) -> [ChainEvent] {
        var channel = try existing(id)
        guard channel.params[participant] == caller else { throw .notAParticipant(caller, id) }
        guard let payout = channel.concludedAllocation else { throw .notConcluded }
        guard !channel.withdrawn.contains(participant) else { throw .alreadyWithdrawn(participant) }
        let amount = payout[participant]
        guard amount > 0 else { throw .nothingToWithdraw(participant) }

        channel.withdrawn.insert(participant)
        let everyonePaid = ParticipantIndex.allCases.allSatisfy { payout[$0] == 0 || channel.withdrawn.contains($0) }
        if everyonePaid { channel.phase = .withdrawn }
        ledger.channels[id] = channel
        ledger.setBalance(ledger.balance(of: caller) + amount, of: caller)
        return [ledger.emit(.withdrawn(participant: participant, amount: amount), channel: id, at: now)]
    }
}

// MARK: - Disputes

extension Adjudicator {
    mutating func register(
        _ signed: SignedState, caller: PublicKey, now: ChainTime
    ) throws(SettlementError) -> [ChainEvent] {
        let id = signed.state.channelID
        var channel = try existing(id)
        let seat = try channel.seat(of: caller)
        guard !channel.isConcluded else { throw .alreadyConcluded }
        guard channel.isFunded else {
            throw .underfunded(deposited: channel.deposits[.first] &+ channel.deposits[.second], required: channel.fundedTotal)
        }
        try Self.verifySignatures(signed, channel.params)
        try Self.checkConserved(signed.state.allocation, channel)
        // Higher versions replace a registration; so does a fully-signed state of the same
        // version as a progressed one (signed by its mover alone): both signatures win.
        if let registered = channel.registeredState,
            signed.version < registered.version || (signed.version == registered.version && !channel.isProgressed)
        {
            throw .staleVersion(registered: registered.version, got: signed.version)
        }
        if let deadline = channel.deadline, now >= deadline {
            throw .windowClosed(deadline: deadline, now: now)
        }

        let deadline = channel.deadline ?? now + channel.params.challengeDuration
        channel.deadline = deadline
        channel.registeredState = signed.state
        channel.isProgressed = false
        channel.phase = .disputed
        var events = [ledger.emit(.registered(version: signed.version, deadline: deadline, by: seat), channel: id, at: now)]
        if signed.state.isFinal {
            events.append(finish(&channel, now: now))
            events += payOut(&channel, now: now)
        }
        ledger.channels[id] = channel
        return events
    }

    mutating func progress(
        _ id: ChannelID, to next: ChannelState, signature: StateSignature, caller: PublicKey, now: ChainTime
    ) throws(SettlementError) -> [ChainEvent] {
        var channel = try existing(id)
        let seat = try channel.seat(of: caller)
        guard next.channelID == id else { throw .wrongChannel(expected: id, got: next.channelID) }
        let (current, mover) = try progressBase(channel, now: now)
        guard !next.isFinal else { throw .progressNotAllowed(.finalStateNeedsBothSignatures) }
        guard seat == mover else { throw .notYourTurn(expected: mover, got: seat) }
        let (expected, exhausted) = current.version.addingReportingOverflow(1)
        guard !exhausted else { throw .progressNotAllowed(.versionsExhausted) }
        guard next.version == expected else { throw .notNextVersion(expected: expected, got: next.version) }
        try Self.checkConserved(next.allocation, channel)
        guard channel.params.isSigned(next, by: mover, with: signature) else { throw .badSignature(mover) }
        try validateMove(from: current, to: next, mover: mover, app: channel.params.appID)

        let deadline = now + channel.params.challengeDuration
        channel.deadline = deadline
        channel.registeredState = next
        channel.isProgressed = true
        ledger.channels[id] = channel
        return [ledger.emit(.progressed(version: next.version, deadline: deadline, mover: mover), channel: id, at: now)]
    }

    /// The registered state progress would start from, and whose turn it is; or why there is none.
    private func progressBase(
        _ channel: ChannelOnChain, now: ChainTime
    ) throws(SettlementError) -> (ChannelState, ParticipantIndex) {
        guard !channel.isConcluded else { throw .alreadyConcluded }
        guard let current = channel.registeredState, channel.deadline != nil else { throw .nothingRegistered }
        guard !current.isFinal else { throw .progressNotAllowed(.registeredStateIsFinal) }
        // No window check: the mover answers a registration inside its window (or later,
        // while nobody has concluded). A player who keeps moving keeps the game alive.
        let appID = channel.params.appID
        guard let app = apps[appID] else { throw .unknownApp(appID) }
        guard let mover = app.mover(in: current) else { throw .progressNotAllowed(.appHasNoTurns(appID)) }
        return (current, mover)
    }

    private func validateMove(
        from current: ChannelState, to next: ChannelState, mover: ParticipantIndex, app appID: AppID
    ) throws(SettlementError) {
        guard let app = apps[appID] else { throw .unknownApp(appID) }
        do {
            try app.validateTransition(from: current, to: next, mover: mover)
        } catch {
            throw .invalidMove(error.reason)
        }
    }

    /// Anyone may conclude: it moves no money, it only fixes the payout the registered state says.
    mutating func conclude(_ id: ChannelID, now: ChainTime) throws(SettlementError) -> [ChainEvent] {
        var channel = try existing(id)
        guard !channel.isConcluded else { throw .alreadyConcluded }
        guard channel.registeredState != nil, let deadline = channel.deadline else { throw .nothingRegistered }
        guard now >= deadline else { throw .windowStillOpen(deadline: deadline, now: now) }

        let event = finish(&channel, now: now)
        ledger.channels[id] = channel
        return [event]
    }

    /// Fixes the payout. A final state pays its allocation; any other state pays what its app
    /// says a game stopped there pays (`AppRules.outcome`, e.g. the player to move forfeits),
    /// or its allocation when the app is unknown or its outcome does not keep the total.
    /// The caller has checked that it may.
    private mutating func finish(_ channel: inout ChannelOnChain, now: ChainTime) -> ChainEvent {
        let state = channel.registeredState ?? ChannelState(channelID: channel.id, version: 0, allocation: channel.opening)
        var payout = state.allocation
        if !state.isFinal, let app = apps[channel.params.appID] {
            let outcome = app.outcome(of: state)
            if outcome.total == channel.fundedTotal { payout = outcome }
        }
        channel.concludedAllocation = payout
        channel.phase = .concluded
        return ledger.emit(.concluded(version: state.version, allocation: payout), channel: channel.id, at: now)
    }

    /// A final state pays every seat its positive payout in the transaction that registers
    /// it: a cooperative close is one transaction, with no withdrawals after it. (The EVM
    /// adjudicator does the same, and leaves a seat whose transfer fails to withdraw later.)
    private mutating func payOut(_ channel: inout ChannelOnChain, now: ChainTime) -> [ChainEvent] {
        guard let payout = channel.concludedAllocation else { return [] }
        var events: [ChainEvent] = []
        for seat in ParticipantIndex.allCases where payout[seat] > 0 && !channel.withdrawn.contains(seat) {
            channel.withdrawn.insert(seat)
            let account = channel.params[seat]
            ledger.setBalance(ledger.balance(of: account) + payout[seat], of: account)
            events.append(ledger.emit(.withdrawn(participant: seat, amount: payout[seat]), channel: channel.id, at: now))
        }
        channel.phase = .withdrawn
        return events
    }

    private static func verifySignatures(_ signed: SignedState, _ params: ChannelParams) throws(SettlementError) {
        do {
            try signed.verify(against: params, requireBoth: true)
        } catch {
            switch error {
            case let .missingSignature(seat): throw .missingSignature(seat)
            case let .badSignature(seat): throw .badSignature(seat)
            case let .wrongChannel(expected, got): throw .wrongChannel(expected: expected, got: got)
            // `verify` throws only the three cases above; anything else fails closed as a bad signature.
            default: throw .badSignature(.first)
            }
        }
    }

    private static func checkConserved(_ allocation: Allocation, _ channel: ChannelOnChain) throws(SettlementError) {
        guard let total = allocation.total else { throw .balanceOverflow }
        guard total == channel.fundedTotal else {
            throw .balanceNotConserved(funded: channel.fundedTotal, proposed: total)
        }
    }
}
