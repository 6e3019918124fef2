import ParleyChannel
import ParleyCrypto
import ParleySettlement
import Testing

/// The adjudicator as a value: the read side the devchain daemon pages through.
@Suite struct AdjudicatorTests {
    @Test func eventLogPagesBySequence() throws {
        var adjudicator = Adjudicator()
        #expect(adjudicator.lastSequence == 0 && adjudicator.events(after: 0).isEmpty)
        let params = try ChannelParams(
            participants: [Keys.alice.publicKey, Keys.bob.publicKey],
            nonce: [UInt8](repeating: 1, count: ChannelParams.nonceBytes))
        let opening = Allocation(5, 0)
        _ = try adjudicator.apply(.mint(account: Keys.alice.publicKey, amount: 5), caller: Keys.bob.publicKey, now: .zero)
        #expect(adjudicator.lastSequence == 0, "minting emits no event")
        for second in 0..<5 as Range<UInt64> {
            _ = try adjudicator.apply(
                .deposit(params: params, opening: opening, participant: .first, amount: 1),
                caller: Keys.alice.publicKey, now: ChainTime(seconds: second))
        }
        #expect(adjudicator.lastSequence == 6)
        #expect(adjudicator.events(after: 2, limit: 3).map(\.sequence) == [3, 4, 5])
        #expect(adjudicator.events(after: 4).map(\.sequence) == [5, 6])
        #expect(adjudicator.events(after: 6).isEmpty && adjudicator.events(after: .max).isEmpty)
        #expect(adjudicator.events(after: 0, limit: 0).isEmpty)
        #expect(adjudicator.events(after: 5).first?.kind == .funded)
        #expect(adjudicator.events(after: 4).first?.time == ChainTime(seconds: 4))
    }
}
