import ParleyChannel
import ParleyGames
import ParleyCrypto
import ParleySettlement
import ParleyWire

/// Test helpers on the package's replayable generator.
extension SeededRandom {
    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }

    mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }

    /// An amount below `bound`.
    mutating func amount(below bound: Amount) -> Amount { Amount(next()) % bound }

    /// Any amount, all 128 bits random.
    mutating func amount() -> Amount { Amount(UInt128(next()) << 64 | UInt128(next())) }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    mutating func pick<T>(_ items: [T]) -> T { items[Int(below(UInt64(items.count)))] }

    mutating func seat() -> ParticipantIndex { chance(50) ? .first : .second }
}

/// A small world of keys and channels from which random, often valid, transactions are drawn.
///
/// Amounts, versions and times are kept small so that many transactions
/// succeed and every rule gets exercised, not just the first check.
struct RandomChain {
    static let keys = [Keys.alice, Keys.bob, Keys.mallory]
    static let openings = [Allocation(30, 20), Allocation(10, 0), Allocation(25, 25)]
    /// Channels between alice and bob: payment and counter-game ones.
    static let channels: [ChannelParams] = (0..<3).compactMap { index in
        try? ChannelParams(
            participants: [Keys.alice.publicKey, Keys.bob.publicKey],
            nonce: [UInt8](repeating: UInt8(index + 1), count: ChannelParams.nonceBytes),
            challengeDuration: 5, appID: index == 2 ? CounterApp.id : .payment)
    }

    static func signer(for key: PublicKey) -> SigningKey {
        keys.first { $0.publicKey == key } ?? Keys.mallory
    }

    /// One transaction and who submits it; `adjudicator` lets it aim at versions near the registered one.
    static func transaction(_ rng: inout SeededRandom, _ adjudicator: Adjudicator) -> (ChainTransaction, SigningKey) {
        let index = Int(rng.below(UInt64(channels.count)))
        let params = channels[index]
        let opening = openings[index]
        let caller = rng.chance(85) ? (rng.chance(50) ? Keys.alice : Keys.bob) : Keys.mallory
        let registered = adjudicator.channel(params.id)?.registeredState
        let callerSeat = params.index(of: caller.publicKey) ?? rng.seat()
        switch rng.below(10) {
        case 0:
            return (.mint(account: rng.pick(keys).publicKey, amount: rng.amount(below: 40)), caller)
        case 1, 2:
            let opening = rng.chance(95) ? opening : Allocation(rng.amount(below: 30), rng.amount(below: 30))
            let missing = opening[callerSeat] &- (adjudicator.channel(params.id)?.deposits[callerSeat] ?? 0)
            let amount = rng.chance(60) && missing > 0 && missing < 100 ? missing : 1 + rng.amount(below: 30)
            return (.deposit(params: params, opening: opening, participant: callerSeat, amount: amount), caller)
        case 3:
            return (.reclaim(channel: params.id), caller)
        case 4, 5:
            return (.register(signedState(&rng, params, opening, registered)), caller)
        case 6:
            let state = nextState(&rng, params, opening, registered)
            // Mostly the participant whose turn it is, so moves get past the turn check.
            let mover = registered.flatMap { CounterApp().mover(in: $0) }
            let submitter = mover.map { rng.chance(80) ? Self.signer(for: params[$0]) : caller } ?? caller
            let moveSigner = rng.chance(80) ? submitter : rng.pick(keys)
            return (.progress(channel: params.id, state: state, moverSignature: state.signed(by: moveSigner)), submitter)
        case 7:
            return (.conclude(channel: params.id), caller)
        default:
            return (.withdraw(channel: params.id, participant: rng.chance(90) ? callerSeat : callerSeat.peer), caller)
        }
    }

    static func allocation(_ rng: inout SeededRandom, _ opening: Allocation) -> Allocation {
        let total = opening[.first] + opening[.second]
        let first = rng.amount(below: total + 1)
        return rng.chance(90) ? Allocation(first, total - first) : Allocation(first, rng.amount(below: 60))
    }

    static func signedState(
        _ rng: inout SeededRandom, _ params: ChannelParams, _ opening: Allocation, _ registered: ChannelState?
    ) -> SignedState {
        let base = registered?.version ?? 0
        let version = rng.chance(80) ? base + rng.below(3) + 1 : rng.below(base + 2)
        let appData: [UInt8] = params.appID == CounterApp.id ? [UInt8(rng.below(6))] : []
        let state = ChannelState(
            channelID: params.id, version: version, allocation: allocation(&rng, opening), appData: appData,
            isFinal: rng.chance(10))
        var signed = SignedState(state: state)
        signed[.first] = rng.chance(92) ? state.signed(by: Keys.alice) : nil
        signed[.second] = rng.chance(92) ? state.signed(by: rng.chance(95) ? Keys.bob : Keys.mallory) : nil
        return signed
    }

    /// Mostly the legal next counter move, sometimes a broken one.
    static func nextState(
        _ rng: inout SeededRandom, _ params: ChannelParams, _ opening: Allocation, _ registered: ChannelState?
    ) -> ChannelState {
        let current = registered ?? ChannelState(channelID: params.id, version: 0, allocation: opening, appData: [0])
        let counter = current.appData.first ?? 0
        return ChannelState(
            channelID: params.id, version: current.version + (rng.chance(90) ? 1 : rng.below(3)),
            allocation: rng.chance(90) ? current.allocation : allocation(&rng, opening),
            appData: rng.chance(90) ? [counter &+ 1] : [UInt8(rng.below(6))], isFinal: rng.chance(5))
    }

    // MARK: random wire values

    static func channelID(_ rng: inout SeededRandom) -> ChannelID {
        ChannelID(digest: (try? Digest(bytes: rng.bytes(32))) ?? channels[0].id.digest)
    }

    static func event(_ rng: inout SeededRandom) -> ChainEvent {
        let kinds: [ChainEvent.Kind] = [
            .deposited(participant: rng.seat(), amount: rng.amount(), totalDeposited: rng.amount()),
            .funded,
            .registered(version: rng.next(), deadline: ChainTime(seconds: rng.next()), by: rng.seat()),
            .progressed(version: rng.next(), deadline: ChainTime(seconds: rng.next()), mover: rng.seat()),
            .concluded(version: rng.next(), allocation: Allocation(rng.amount(), rng.amount())),
            .withdrawn(participant: rng.seat(), amount: rng.amount()),
            .reclaimed(participant: rng.seat(), amount: rng.amount()),
        ]
        return ChainEvent(
            sequence: 1 + rng.below(.max - 1), time: ChainTime(seconds: rng.next()), channel: channelID(&rng),
            kind: rng.pick(kinds))
    }

    static func anyTransaction(_ rng: inout SeededRandom) -> ChainTransaction {
        let params = rng.pick(channels)
        let state = ChannelState(
            channelID: channelID(&rng), version: rng.next(), allocation: Allocation(rng.amount(), rng.amount()),
            appData: rng.bytes(Int(rng.below(50))), isFinal: rng.chance(50))
        var signed = SignedState(state: state)
        for seat in ParticipantIndex.allCases where rng.chance(60) {
            signed[seat] = state.signed(by: rng.pick(keys))
        }
        let all: [ChainTransaction] = [
            .mint(account: rng.pick(keys).publicKey, amount: rng.amount()),
            .deposit(params: params, opening: Allocation(rng.amount(), rng.amount()), participant: rng.seat(), amount: rng.amount()),
            .reclaim(channel: channelID(&rng)),
            .register(signed),
            .progress(channel: channelID(&rng), state: state, moverSignature: state.signed(by: rng.pick(keys))),
            .conclude(channel: channelID(&rng)),
            .withdraw(channel: channelID(&rng), participant: rng.seat()),
        ]
        return rng.pick(all)
    }

    /// One of every `SettlementError` case, with random fields.
    static func everyError(_ rng: inout SeededRandom) -> [SettlementError] {
        let key = rng.pick(keys).publicKey
        let time = { (rng: inout SeededRandom) in ChainTime(seconds: rng.next()) }
        let refusals: [ProgressRefusal] = [
            .appHasNoTurns(rng.chance(50) ? .payment : CounterApp.id),
            .windowStillOpen(deadline: time(&rng), now: time(&rng)), .registeredStateIsFinal, .versionsExhausted, .finalStateNeedsBothSignatures,
        ]
        let text = String(decoding: rng.bytes(Int(rng.below(40))).map { 0x20 + $0 % 0x5F }, as: UTF8.self) + "é✓"
        return [
            .unknownChannel(channelID(&rng)), .notAParticipant(key, channelID(&rng)), .badSignature(rng.seat()),
            .missingSignature(rng.seat()), .wrongChannel(expected: channelID(&rng), got: channelID(&rng)),
            .staleVersion(registered: rng.next(), got: rng.next()), .notNextVersion(expected: rng.next(), got: rng.next()),
            .windowClosed(deadline: time(&rng), now: time(&rng)), .windowStillOpen(deadline: time(&rng), now: time(&rng)),
            .nothingRegistered, .alreadyConcluded, .notConcluded, .alreadyWithdrawn(rng.seat()),
            .nothingToWithdraw(rng.seat()), .underfunded(deposited: rng.amount(), required: rng.amount()),
            .overDeposit(participant: rng.seat(), deposited: rng.amount(), amount: rng.amount(), required: rng.amount()),
            .openingMismatch(channel: Allocation(rng.amount(), rng.amount()), got: Allocation(rng.amount(), rng.amount())),
            .alreadyFunded, .depositsClosed, .nothingToReclaim(rng.seat()), .zeroAmount,
            .insufficientBalance(account: key, has: rng.amount(), needs: rng.amount()),
            .notYourTurn(expected: rng.seat(), got: rng.seat()), .progressNotAllowed(rng.pick(refusals)),
            .invalidMove(text), .unknownApp(CounterApp.id),
            .balanceNotConserved(funded: rng.amount(), proposed: rng.amount()), .balanceOverflow, .transport(text), .notPermitted(text),
            .wrongDomain(expected: .embedded, got: .devchainDefault),
        ]
    }
}
