import ParleyChannel
import ParleyCrypto
import ParleySettlement
import Testing

/// Registration, the challenge window and concluding, against every backend.
@Suite struct DisputeTests {
    @Test(arguments: Backend.allCases)
    func firstRegistrationOpensTheWindow(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.chain.advance(5)
        let events = try await s.bob.register(s.signed(s.state(3, (90, 60))))
        #expect(events.map(\.kind) == [.registered(version: 3, deadline: ChainTime(seconds: 65), by: .second)])
        #expect(events.first?.time == ChainTime(seconds: 5))
        let channel = try #require(try await s.onChain())
        #expect(channel.phase == .disputed && channel.registeredVersion == 3)
        #expect(channel.deadline == ChainTime(seconds: 65))
    }

    @Test(arguments: Backend.allCases)
    func registrationNeedsBothValidSignatures(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.missingSignature(.second)) {
            try await s.alice.register(s.signed(s.state(1), by: [.first]))
        }
        await #expect(throws: SettlementError.missingSignature(.first)) {
            try await s.alice.register(s.signed(s.state(1), by: [.second]))
        }
        var forged = s.signed(s.state(1))
        forged[.second] = s.sign(s.state(1), Keys.mallory)
        await #expect(throws: SettlementError.badSignature(.second)) { try await s.alice.register(forged) }
        // A signature over a different state does not verify for this one.
        var swapped = s.signed(s.state(1))
        swapped[.first] = s.sign(s.state(2), Keys.alice)
        await #expect(throws: SettlementError.badSignature(.first)) { try await s.alice.register(swapped) }
        #expect(try await s.onChain()?.phase == .open)
    }

    @Test(arguments: Backend.allCases)
    func registrationByAStrangerOrForAnotherChannelIsRefused(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.notAParticipant(Keys.mallory.publicKey, s.params.id)) {
            try await s.mallory.register(s.signed(s.state(1)))
        }
        // Signatures made for one channel do not verify for the other.
        let other = try await Scenario.funded(s.chain, nonce: 8)
        var crossed = other.signed(other.state(1))
        let mine = s.signed(s.state(1))
        crossed[.first] = mine[.first]
        await #expect(throws: SettlementError.badSignature(.first)) { try await s.alice.register(crossed) }
    }

    @Test(arguments: Backend.allCases)
    func registrationMustConserveTheFundedTotal(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.balanceNotConserved(funded: 150, proposed: 151)) {
            try await s.alice.register(s.signed(s.state(1, (101, 50))))
        }
        await #expect(throws: SettlementError.balanceOverflow) {
            try await s.alice.register(s.signed(s.state(1, (.max, 50))))
        }
    }

    @Test(arguments: Backend.allCases)
    func staleOrEqualVersionIsRefused(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(5)))
        await #expect(throws: SettlementError.staleVersion(registered: 5, got: 4)) {
            try await s.bob.register(s.signed(s.state(4, (0, 150))))
        }
        await #expect(throws: SettlementError.staleVersion(registered: 5, got: 5)) {
            try await s.bob.register(s.signed(s.state(5, (0, 150))))
        }
        #expect(try await s.onChain()?.registeredState == s.state(5))
    }

    @Test(arguments: Backend.allCases)
    func higherRegistrationInsideTheWindowReplacesTheStateButKeepsTheDeadline(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(2, (150, 0))))
        try await s.chain.advance(30)
        let events = try await s.bob.register(s.signed(s.state(7, (20, 130))))
        #expect(events.map(\.kind) == [.registered(version: 7, deadline: ChainTime(seconds: 60), by: .second)])
        let channel = try #require(try await s.onChain())
        #expect(channel.deadline == ChainTime(seconds: 60) && channel.registeredVersion == 7)
    }

    @Test(arguments: Backend.allCases)
    func windowIsOpenAtDeadlineMinusOneAndClosedAtDeadline(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.chain.advance(10)
        try await s.alice.register(s.signed(s.state(1)))
        let deadline = ChainTime(seconds: 70)
        try await s.chain.advance(to: ChainTime(seconds: 69))
        await #expect(throws: SettlementError.windowStillOpen(deadline: deadline, now: ChainTime(seconds: 69))) {
            try await s.alice.conclude(s.params.id)
        }
        try await s.bob.register(s.signed(s.state(2, (10, 140))))
        try await s.chain.advance(1)
        await #expect(throws: SettlementError.windowClosed(deadline: deadline, now: deadline)) {
            try await s.bob.register(s.signed(s.state(3, (0, 150))))
        }
        let events = try await s.alice.conclude(s.params.id)
        #expect(events.map(\.kind) == [.concluded(version: 2, allocation: Allocation(10, 140))])
        #expect(events.first?.time == deadline)
    }

    @Test(arguments: Backend.allCases)
    func closedWindowStaysDisputedUntilSomeoneConcludes(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(1)))
        try await s.chain.advance(1000)
        #expect(try await s.onChain()?.phase == .disputed)
        // Anyone may conclude: it only fixes the payout the registered state says.
        try await s.mallory.conclude(s.params.id)
        #expect(try await s.onChain()?.phase == .concluded)
    }

    @Test(arguments: Backend.allCases)
    func finalStateConcludesAtOnce(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        let events = try await s.bob.register(s.signed(s.state(4, (30, 120), isFinal: true)))
        // A final state also pays both seats in the same transaction: a cooperative close
        // is one transaction, with no withdrawals after it.
        #expect(events.map(\.kind) == [
            .registered(version: 4, deadline: ChainTime(seconds: 60), by: .second),
            .concluded(version: 4, allocation: Allocation(30, 120)),
            .withdrawn(participant: .first, amount: 30), .withdrawn(participant: .second, amount: 120),
        ])
        #expect(try await s.ordinals(events) == [4, 5, 6, 7])
        let channel = try #require(try await s.onChain())
        #expect(channel.phase == .withdrawn && channel.concludedAllocation == Allocation(30, 120))
        #expect(channel.withdrawn == [.first, .second])
        #expect(try await s.alice.balance(of: Keys.alice.publicKey) == 30)
        #expect(try await s.bob.balance(of: Keys.bob.publicKey) == 120)
        await #expect(throws: SettlementError.alreadyConcluded) { try await s.alice.register(s.signed(s.state(9))) }
        await #expect(throws: SettlementError.alreadyWithdrawn(.first)) {
            try await s.alice.withdraw(s.params.id, participant: .first)
        }
    }

    @Test(arguments: Backend.allCases)
    func finalStateInsideAnOpenWindowConcludesAtOnce(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        try await s.alice.register(s.signed(s.state(1)))
        let events = try await s.bob.register(s.signed(s.state(2, (0, 150), isFinal: true)))
        // Only the seat with a payout is paid.
        #expect(events.suffix(2).map(\.kind) == [
            .concluded(version: 2, allocation: Allocation(0, 150)), .withdrawn(participant: .second, amount: 150),
        ])
        #expect(try await s.onChain()?.phase == .withdrawn)
    }

    @Test(arguments: Backend.allCases)
    func concludeNeedsARegisteredStateAndHappensOnce(_ backend: Backend) async throws {
        let s = try await Scenario.funded(try await backend.makeChain())
        await #expect(throws: SettlementError.nothingRegistered) { try await s.alice.conclude(s.params.id) }
        let other = try Scenario(s.chain, nonce: 99)
        await #expect(throws: SettlementError.unknownChannel(other.params.id)) { try await s.alice.conclude(other.params.id) }
        try await s.alice.register(s.signed(s.state(1)))
        try await s.chain.advance(60)
        try await s.alice.conclude(s.params.id)
        await #expect(throws: SettlementError.alreadyConcluded) { try await s.bob.conclude(s.params.id) }
    }
}
