import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire
import Testing

/// Withdrawing concluded balances, against every backend.
@Suite struct PayoutTests {
    /// Registers `balances` at version 1, lets the window pass and concludes.
    static func concluded(_ backend: Backend, _ balances: (Amount, Amount)) async throws -> Scenario {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(1, balances)))
        try await s.chain.advance(Scenario.challenge)
        try await s.alice.conclude(s.params.id)
        return s
    }

    @Test(arguments: Backend.allCases)
    func withdrawPaysEachSeatOnce(_ backend: Backend) async throws {
        let s = try await Self.concluded(backend, (40, 110))
        let events = try await s.alice.withdraw(s.params.id, participant: .first)
        #expect(events.map(\.kind) == [.withdrawn(participant: .first, amount: 40)])
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 40)
        await #expect(throws: SettlementError.alreadyWithdrawn(.first)) {
            try await s.alice.withdraw(s.params.id, participant: .first)
        }
        #expect(try await s.onChain()?.phase == .concluded)
        try await s.bob.withdraw(s.params.id, participant: .second)
        #expect(try await s.bob.balance(of: Keys.bob.publicKey) == 110)
        let channel = try #require(try await s.onChain())
        #expect(channel.phase == .withdrawn && channel.holdings == 0)
    }

    @Test(arguments: Backend.allCases)
    func withdrawBeforeConcludeIsRefused(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.notConcluded) { try await s.alice.withdraw(s.params.id, participant: .first) }
        try await s.alice.register(s.signed(s.state(1)))
        await #expect(throws: SettlementError.notConcluded) { try await s.alice.withdraw(s.params.id, participant: .first) }
    }

    @Test(arguments: Backend.allCases)
    func withdrawForAnotherSeatIsRefused(_ backend: Backend) async throws {
        let s = try await Self.concluded(backend, (40, 110))
        await #expect(throws: SettlementError.notAParticipant(Keys.alice.publicKey, s.params.id)) {
            try await s.alice.withdraw(s.params.id, participant: .second)
        }
        await #expect(throws: SettlementError.notAParticipant(Keys.mallory.publicKey, s.params.id)) {
            try await s.mallory.withdraw(s.params.id, participant: .first)
        }
    }

    @Test(arguments: Backend.allCases)
    func zeroPayoutHasNothingToWithdrawAndDoesNotBlockTheWithdrawnPhase(_ backend: Backend) async throws {
        let s = try await Self.concluded(backend, (0, 150))
        await #expect(throws: SettlementError.nothingToWithdraw(.first)) {
            try await s.alice.withdraw(s.params.id, participant: .first)
        }
        try await s.bob.withdraw(s.params.id, participant: .second)
        #expect(try await s.onChain()?.phase == .withdrawn)
    }
}
