import ParleyChannel
import ParleyGames
import ParleyCrypto
import ParleySettlement
import Testing

/// Advancing a game on chain (force-move), against every backend.
@Suite struct ProgressTests {
    /// A funded counter-game channel with counter `counter` registered at version `version`,
    /// its window closed.
    static func stalled(_ backend: Backend, counter: UInt8 = 0, version: UInt64 = 1) async throws -> Scenario {
        let s = try await Scenario.funded(try await backend.makeChain(), app: CounterApp.id)
        try await s.alice.register(s.signed(s.state(version, appData: [counter])))
        try await s.chain.advance(Scenario.challenge)
        return s
    }

    @discardableResult
    static func move(_ s: Scenario, version: UInt64, counter: UInt8, by seat: ParticipantIndex) async throws -> [ChainEvent] {
        let next = s.state(version, appData: [counter])
        return try await s.adapter(seat).progress(
            s.params.id, to: next, moverSignature: s.sign(next, seat == .first ? Keys.alice : Keys.bob))
    }

    @Test(arguments: Backend.allCases)
    func moverAdvancesAfterTheWindowAndOpensAFreshOne(_ backend: Backend) async throws {
        let s = try await Self.stalled(backend)
        try await s.chain.advance(7)
        let events = try await Self.move(s, version: 2, counter: 1, by: .first)
        #expect(events.map(\.kind) == [.progressed(version: 2, deadline: ChainTime(seconds: 127), mover: .first)])
        let channel = try #require(try await s.onChain())
        #expect(channel.registeredState == s.state(2, appData: [1]) && channel.deadline == ChainTime(seconds: 127))
        #expect(channel.phase == .disputed)
        // The fresh window holds off conclude; the next mover may answer inside it.
        await #expect(throws: SettlementError.windowStillOpen(deadline: ChainTime(seconds: 127), now: ChainTime(seconds: 67))) {
            try await s.alice.conclude(s.params.id)
        }
        try await s.chain.advance(10)
        let answer = try await Self.move(s, version: 3, counter: 2, by: .second)
        #expect(answer.map(\.kind) == [.progressed(version: 3, deadline: ChainTime(seconds: 137), mover: .second)])
        try await s.chain.advance(to: ChainTime(seconds: 137))
        let concluded = try await s.bob.conclude(s.params.id)
        #expect(concluded.map(\.kind) == [.concluded(version: 3, allocation: s.opening)])
    }

    @Test(arguments: Backend.allCases)
    func theMoverAnswersARegistrationInsideItsWindow(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain(), app: CounterApp.id)
        await #expect(throws: SettlementError.nothingRegistered) {
            _ = try await Self.move(s, version: 1, counter: 1, by: .first)
        }
        try await s.bob.register(s.signed(s.state(1, appData: [0])))
        try await s.chain.advance(Scenario.challenge - 1)
        // Counter 0: alice's turn. Her move one second before the deadline keeps the game alive.
        let events = try await Self.move(s, version: 2, counter: 1, by: .first)
        #expect(events.map(\.kind) == [.progressed(version: 2, deadline: ChainTime(seconds: 119), mover: .first)])
        try await s.chain.advance(1)
        await #expect(throws: SettlementError.windowStillOpen(deadline: ChainTime(seconds: 119), now: ChainTime(seconds: 60))) {
            try await s.bob.conclude(s.params.id)
        }
    }

    @Test(arguments: Backend.allCases)
    func onlyTheMoverMayProgress(_ backend: Backend) async throws {
        let s = try await Self.stalled(backend, counter: 1)
        await #expect(throws: SettlementError.notYourTurn(expected: .second, got: .first)) {
            _ = try await Self.move(s, version: 2, counter: 2, by: .first)
        }
        // The mover's key must have signed: bob submitting alice's signature is refused.
        let next = s.state(2, appData: [2])
        await #expect(throws: SettlementError.badSignature(.second)) {
            try await s.bob.progress(s.params.id, to: next, moverSignature: s.sign(next, Keys.alice))
        }
        await #expect(throws: SettlementError.notAParticipant(Keys.mallory.publicKey, s.params.id)) {
            try await s.mallory.progress(s.params.id, to: next, moverSignature: s.sign(next, Keys.mallory))
        }
        try await Self.move(s, version: 2, counter: 2, by: .second)
    }

    @Test(arguments: Backend.allCases)
    func invalidMovesAreRefused(_ backend: Backend) async throws {
        let s = try await Self.stalled(backend)
        await #expect(throws: SettlementError.invalidMove("the counter must go up by exactly one")) {
            _ = try await Self.move(s, version: 2, counter: 2, by: .first)
        }
        await #expect(throws: SettlementError.notNextVersion(expected: 2, got: 3)) {
            _ = try await Self.move(s, version: 3, counter: 1, by: .first)
        }
        let moved = s.state(2, (150, 0), appData: [1])
        await #expect(throws: SettlementError.invalidMove("a move does not change balances")) {
            try await s.alice.progress(s.params.id, to: moved, moverSignature: s.sign(moved, Keys.alice))
        }
        let inflated = s.state(2, (151, 0), appData: [1])
        await #expect(throws: SettlementError.balanceNotConserved(funded: 150, proposed: 151)) {
            try await s.alice.progress(s.params.id, to: inflated, moverSignature: s.sign(inflated, Keys.alice))
        }
        let other = try Scenario(s.chain, app: CounterApp.id, nonce: 42)
        let foreign = other.state(2, appData: [1])
        await #expect(throws: SettlementError.wrongChannel(expected: s.params.id, got: other.params.id)) {
            try await s.alice.progress(s.params.id, to: foreign, moverSignature: s.sign(foreign, Keys.alice))
        }
        #expect(try await s.onChain()?.registeredVersion == 1)
    }

    @Test(arguments: Backend.allCases)
    func paymentChannelsNeverProgress(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(1)))
        try await s.chain.advance(Scenario.challenge)
        let next = s.state(2)
        await #expect(throws: SettlementError.progressNotAllowed(.appHasNoTurns(.payment))) {
            try await s.alice.progress(s.params.id, to: next, moverSignature: s.sign(next, Keys.alice))
        }
    }

    @Test(arguments: Backend.allCases)
    func unknownAppsCannotProgressButStillSettle(_ backend: Backend) async throws {
        let app = try AppID("test.unknown/1")
        let s = try await Scenario.funded(try await backend.makeChain(), app: app)
        try await s.alice.register(s.signed(s.state(1, appData: [0])))
        try await s.chain.advance(Scenario.challenge)
        let next = s.state(2, appData: [1])
        await #expect(throws: SettlementError.unknownApp(app)) {
            try await s.alice.progress(s.params.id, to: next, moverSignature: s.sign(next, Keys.alice))
        }
        try await s.alice.conclude(s.params.id)
    }

    @Test(arguments: Backend.allCases)
    func higherFullySignedRegistrationIsAcceptedDuringAProgressWindow(_ backend: Backend) async throws {
        let s = try await Self.stalled(backend)
        try await Self.move(s, version: 2, counter: 1, by: .first)
        try await s.chain.advance(10)
        await #expect(throws: SettlementError.staleVersion(registered: 2, got: 1)) {
            try await s.bob.register(s.signed(s.state(1, appData: [0])))
        }
        // Both signatures beat the mover's alone at the same version (a player cannot
        // progress an old state past the fully-signed one that followed it)…
        let same = try await s.bob.register(s.signed(s.state(2, appData: [9])))
        #expect(same.map(\.kind) == [.registered(version: 2, deadline: ChainTime(seconds: 120), by: .second)])
        // … but only once: a fully-signed registration is replaced only by a higher version.
        await #expect(throws: SettlementError.staleVersion(registered: 2, got: 2)) {
            try await s.bob.register(s.signed(s.state(2, appData: [5])))
        }
        let events = try await s.bob.register(s.signed(s.state(8, (10, 140), appData: [7])))
        // Registration keeps the progress window's deadline.
        #expect(events.map(\.kind) == [.registered(version: 8, deadline: ChainTime(seconds: 120), by: .second)])
        try await s.chain.advance(to: ChainTime(seconds: 120))
        await #expect(throws: SettlementError.windowClosed(deadline: ChainTime(seconds: 120), now: ChainTime(seconds: 120))) {
            try await s.bob.register(s.signed(s.state(9, appData: [8])))
        }
        // Counter 7 is odd: bob's turn, from the registered balances.
        let next = s.state(9, (10, 140), appData: [8])
        try await s.bob.progress(s.params.id, to: next, moverSignature: s.sign(next, Keys.bob))
    }

    @Test(arguments: Backend.allCases)
    func progressAfterConcludeOrToAFinalStateIsRefused(_ backend: Backend) async throws {
        let s = try await Self.stalled(backend)
        // Issue 15, item 4: the mover may not "move" to a final state (signed by itself
        // alone): a final state enters the chain only by `register`, with both signatures.
        let final = s.state(2, appData: [1], isFinal: true)
        await #expect(throws: SettlementError.progressNotAllowed(.finalStateNeedsBothSignatures)) {
            try await s.alice.progress(s.params.id, to: final, moverSignature: s.sign(final, Keys.alice))
        }
        #expect(try await s.onChain()?.registeredState == s.state(1, appData: [0]))
        try await s.chain.advance(Scenario.challenge)
        try await s.bob.conclude(s.params.id)
        await #expect(throws: SettlementError.alreadyConcluded) {
            _ = try await Self.move(s, version: 3, counter: 2, by: .second)
        }
    }
}
