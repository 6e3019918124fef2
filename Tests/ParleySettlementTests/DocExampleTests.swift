import ParleyChannel
import ParleyCrypto
import ParleySettlement
import Testing

/// The LocalChain example in Docs/Settlement.md, kept compiling and true.
@Suite struct DocExampleTests {
    @Test func localChainExampleFromTheDocsWorks() async throws {
        let alice = SigningKey(), bob = SigningKey()
        let chain = LocalChain()
        let a = chain.adapter(for: alice.publicKey)
        let b = chain.adapter(for: bob.publicKey)

        let params = try ChannelParams.random(proposer: alice.publicKey, responder: bob.publicKey, challengeDuration: 60)
        let opening = Allocation(100, 50)
        try await a.mint(100, to: alice.publicKey)
        try await b.mint(50, to: bob.publicKey)
        try await a.deposit(params: params, opening: opening, participant: .first, amount: 100)
        let funded = try await b.deposit(params: params, opening: opening, participant: .second, amount: 50)
        #expect(funded.last?.kind == .funded)

        let state = ChannelState(channelID: params.id, version: 7, allocation: Allocation(80, 70))
        let latest = SignedState(state: state, signatures: [state.signed(by: alice), state.signed(by: bob)])
        try await a.register(latest)
        chain.advance(by: 60)
        try await a.conclude(params.id)
        try await a.withdraw(params.id, participant: .first)
        #expect(try await a.balance(of: alice.publicKey) == 80)
    }
}
