import ParleyChannel
import ParleyCrypto
import ParleySettlement
import Testing

/// Deposits, funding and reclaiming, against every backend.
@Suite struct FundingTests {
    @Test(arguments: Backend.allCases)
    func partialDepositsDoNotFundAndCompleteOnesDo(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.mintOpening()
        let first = try await s.deposit(.first, 40)
        #expect(first.map(\.kind) == [.deposited(participant: .first, amount: 40, totalDeposited: 40)])
        try await s.deposit(.first, 60)
        #expect(try await s.onChain()?.isFunded == false)
        #expect(try await s.onChain()?.deposits == Allocation(100, 0))
        let last = try await s.deposit(.second, 50)
        #expect(last.map(\.kind) == [.deposited(participant: .second, amount: 50, totalDeposited: 50), .funded])
        let channel = try #require(try await s.onChain())
        #expect(channel.isFunded && channel.phase == .open && channel.holdings == 150)
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 0)
    }

    /// A channel bound to another chain (its settlement domain is in the channel id, so in
    /// every signature) cannot be funded here: its states can never be registered here.
    @Test(arguments: Backend.allCases)
    func depositForAChannelBoundToAnotherChainIsRefused(_ backend: Backend) async throws {
        let chain = try await backend.makeChain()
        let s = try Scenario(chain)
        try await s.mintOpening()
        let elsewhere = try SettlementDomain(chainID: chain.domain.chainID &+ 1)
        let foreign = try ChannelParams(
            participants: s.params.participants, nonce: s.params.nonce, challengeDuration: s.params.challengeDuration,
            domain: elsewhere)
        await #expect(throws: SettlementError.wrongDomain(expected: chain.domain, got: elsewhere)) {
            try await s.alice.deposit(params: foreign, opening: s.opening, participant: .first, amount: 100)
        }
        #expect(try await s.alice.channel(foreign.id) == nil)
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 100)
        #expect(try await s.alice.domain() == chain.domain)
    }

    @Test(arguments: Backend.allCases)
    func depositAboveTheOpeningAmountIsRefused(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.mintOpening(extra: 10)
        try await s.deposit(.first, 90)
        await #expect(throws: SettlementError.overDeposit(participant: .first, deposited: 90, amount: 11, required: 100)) {
            try await s.deposit(.first, 11)
        }
        try await s.deposit(.first, 10)
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 10)
    }

    @Test(arguments: Backend.allCases)
    func depositAfterFundingIsRefused(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.mint(5, to: Keys.alice.publicKey)
        await #expect(throws: SettlementError.alreadyFunded) { try await s.deposit(.first, 1) }
    }

    @Test(arguments: Backend.allCases)
    func depositNamingADifferentOpeningIsRefused(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.mintOpening()
        try await s.deposit(.first, 10)
        await #expect(throws: SettlementError.openingMismatch(channel: Allocation(100, 50), got: Allocation(100, 60))) {
            try await s.bob.deposit(params: s.params, opening: Allocation(100, 60), participant: .second, amount: 50)
        }
    }

    @Test(arguments: Backend.allCases)
    func depositIntoAnotherSeatOrByAStrangerIsRefused(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.mintOpening()
        await #expect(throws: SettlementError.notAParticipant(Keys.alice.publicKey, s.params.id)) {
            try await s.alice.deposit(params: s.params, opening: s.opening, participant: .second, amount: 10)
        }
        try await s.mallory.mint(10, to: Keys.mallory.publicKey)
        await #expect(throws: SettlementError.notAParticipant(Keys.mallory.publicKey, s.params.id)) {
            try await s.mallory.deposit(params: s.params, opening: s.opening, participant: .first, amount: 10)
        }
        #expect(try await s.onChain() == nil)
    }

    @Test(arguments: Backend.allCases)
    func depositNeedsThatMuchInTheAccount(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.alice.mint(30, to: Keys.alice.publicKey)
        await #expect(throws: SettlementError.insufficientBalance(account: Keys.alice.publicKey, has: 30, needs: 31)) {
            try await s.deposit(.first, 31)
        }
        await #expect(throws: SettlementError.zeroAmount) { try await s.deposit(.first, 0) }
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 30)
    }

    @Test(arguments: Backend.allCases)
    func openingThatOverflowsIsRefused(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain(), opening: Allocation(.max, 1))
        try await s.alice.mint(1, to: Keys.alice.publicKey)
        await #expect(throws: SettlementError.balanceOverflow) { try await s.deposit(.first, 1) }
        await #expect(throws: SettlementError.zeroAmount) { try await s.alice.mint(0, to: Keys.alice.publicKey) }
        await #expect(throws: SettlementError.balanceOverflow) { try await s.alice.mint(.max, to: Keys.bob.publicKey) }
    }

    @Test(arguments: Backend.allCases)
    func registerWithoutFundingIsRefused(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        await #expect(throws: SettlementError.unknownChannel(s.params.id)) {
            try await s.alice.register(s.signed(s.state(1)))
        }
        try await s.mintOpening()
        try await s.deposit(.first, 100)
        await #expect(throws: SettlementError.underfunded(deposited: 100, required: 150)) {
            try await s.alice.register(s.signed(s.state(1)))
        }
    }

    @Test(arguments: Backend.allCases)
    func reclaimReturnsTheDepositAndClosesTheChannelToDeposits(_ backend: Backend) async throws {
        let s = try Scenario(try await backend.makeChain())
        try await s.mintOpening()
        try await s.deposit(.first, 70)
        try await s.deposit(.second, 20)
        let events = try await s.alice.reclaim(s.params.id)
        #expect(events.map(\.kind) == [.reclaimed(participant: .first, amount: 70)])
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 100)
        await #expect(throws: SettlementError.nothingToReclaim(.first)) { try await s.alice.reclaim(s.params.id) }
        await #expect(throws: SettlementError.depositsClosed) { try await s.deposit(.first, 1) }
        try await s.bob.reclaim(s.params.id)
        #expect(try await s.bob.balance(of: Keys.bob.publicKey) == 50)
        let channel = try #require(try await s.onChain())
        #expect(channel.depositsClosed && channel.holdings == 0 && channel.phase == .open)
    }

    @Test(arguments: Backend.allCases)
    func reclaimIsRefusedOnceFundedOrForStrangers(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.alreadyFunded) { try await s.alice.reclaim(s.params.id) }
        await #expect(throws: SettlementError.notAParticipant(Keys.mallory.publicKey, s.params.id)) {
            try await s.mallory.reclaim(s.params.id)
        }
        let other = try Scenario(s.chain, nonce: 9)
        await #expect(throws: SettlementError.unknownChannel(other.params.id)) { try await s.alice.reclaim(other.params.id) }
    }
}
