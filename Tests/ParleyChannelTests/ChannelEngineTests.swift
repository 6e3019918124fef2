import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

@Suite(.onBothBackends) struct OpeningTests {
    @Test func bothSidesCommitVersionZeroAfterTheHandshake() throws {
        let duo = try Duo(alice: 70, bob: 30)
        #expect(duo.violations.isEmpty, "\(duo.violations)")
        for side in duo.sides {
            #expect(side.engine.phase == .idle)
            #expect(side.engine.committed?.version == 0)
            #expect(side.engine.committed?.state.allocation == Allocation(70, 30))
            #expect(side.events.contains { if case .opened = $0 { true } else { false } })
        }
    }

    @Test func openerJournalsItsSignatureBeforeSendingTheProposal() throws {
        let (_, effects) = try ChannelEngine.propose(
            params: Fixtures.params(), allocation: Allocation(1, 1), key: Fixtures.signer(Fixtures.alice))
        #expect(effects.count == 3)
        guard case .journal(.opened) = effects[0], case .journal(.signed) = effects[1],
            case .send(.openProposal) = effects[2]
        else {
            Issue.record("unexpected order: \(effects)")
            return
        }
    }

    @Test func proposalWithAForgedOpenerSignatureIsRefused() throws {
        let params = Fixtures.params()
        let initial = ChannelState(channelID: params.id, version: 0, allocation: Allocation(5, 5))
        let forged = OpenProposal(params: params, initial: initial, signature: Fixtures.sign(initial, Fixtures.mallory))
        #expect(throws: OpenRejection.invalidInitialState(.badSignature(signer: .first))) {
            try ChannelEngine.accept(forged, key: Fixtures.signer(Fixtures.bob))
        }
    }

    @Test func onlyTheSecondSeatCanAcceptAndOnlyTheFirstCanPropose() throws {
        let params = Fixtures.params()
        #expect(throws: OpenRejection.notAParticipant(role: "proposer (first seat)")) {
            try ChannelEngine.propose(params: params, allocation: Allocation(1, 1), key: Fixtures.signer(Fixtures.bob))
        }
        let (_, effects) = try ChannelEngine.propose(params: params, allocation: Allocation(1, 1), key: Fixtures.signer(Fixtures.alice))
        guard case let .send(.openProposal(proposal)) = effects.last else { return }
        #expect(throws: OpenRejection.notAParticipant(role: "responder (second seat)")) {
            try ChannelEngine.accept(proposal, key: Fixtures.signer(Fixtures.mallory))
        }
    }

    @Test func lostOpenAcceptIsRecoveredByResendingTheProposal() throws {
        var duo = try Duo(alice: 10, bob: 10, deliverHandshake: false)
        #expect(duo.alice.engine.phase == .opening)
        duo.disconnect()
        duo.connect()
        duo.settle()
        #expect(duo.alice.engine.phase == .idle)
        #expect(duo.bob.engine.phase == .idle)
        #expect(duo.alice.engine.committed == duo.bob.engine.committed)
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }
}

@Suite(.onBothBackends) struct UpdateTests {
    @Test func paymentCommitsOnBothSidesWithBothSignatures() throws {
        var duo = try Duo(alice: 100, bob: 100)
        duo.pay(0, 10, id: 1)
        duo.settle()
        #expect(duo.violations.isEmpty, "\(duo.violations)")
        #expect(duo.alice.committedUpdates == [1])
        for side in duo.sides {
            #expect(side.engine.committed?.version == 1)
            #expect(side.engine.committed?.state.allocation == Allocation(90, 110))
            #expect(side.engine.committed?.isFullySigned == true)
        }
    }

    @Test func proposerJournalsBeforeSendingAndResponderJournalsBeforeAccepting() throws {
        let duo = try Duo()
        var alice = duo.alice.engine
        let proposing = alice.handle(.update(1, .pay(amount: 5)))
        guard proposing.count == 2, case let .journal(.signed(signed)) = proposing[0],
            case let .send(.propose(state, _)) = proposing[1]
        else {
            Issue.record("proposer effects out of order: \(proposing)")
            return
        }
        #expect(signed.state == state)
        var bob = duo.bob.engine
        _ = bob.handle(proposing.compactMap { if case let .send(m) = $0 { .received(m) } else { nil } }[0])
        let accepting = bob.handle(.decided(version: 1, .accept))
        guard accepting.count == 3, case .journal(.committed) = accepting[0], case .send(.accept) = accepting[1],
            case .notify(.committed) = accepting[2]
        else {
            Issue.record("responder effects out of order: \(accepting)")
            return
        }
    }

    @Test func paymentLargerThanTheBalanceIsRefusedLocally() throws {
        var duo = try Duo(alice: 5, bob: 100)
        duo.pay(0, 6, id: 9)
        #expect(duo.alice.failedUpdates.first?.1 == .refused(.insufficientFunds(available: 5, requested: 6)))
        #expect(duo.wire[0].isEmpty)
        #expect(duo.alice.engine.highestSignedVersion == 0)
    }

    @Test func updateComputedFromAnOldStateIsRefused() throws {
        var duo = try Duo()
        duo.pay(0, 1, id: 1)
        duo.settle()
        duo.input(0, .update(2, .replace(base: 0, allocation: Allocation(50, 150), appData: [], isFinal: false)))
        #expect(duo.alice.failedUpdates.first?.1 == .refused(.staleBase(base: 0, committed: 1)))
    }

    @Test func rejectedProposalBurnsItsVersion() throws {
        var duo = try Duo()
        duo.pay(0, 1, id: 1)
        duo.deliverAll()
        duo.decideAll(.reject("not today"))
        duo.deliverAll()
        #expect(duo.alice.failedUpdates.first?.1 == .rejected(.declined("not today")))
        #expect(duo.alice.journal.last == .aborted(version: 1))
        duo.pay(0, 2, id: 2)
        duo.settle()
        #expect(duo.alice.engine.committed?.version == 2, "version 1 is burned; the next proposal uses 2")
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(98, 102))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func withCoalescingOffQueuedPaymentsGoOutOneAtATimeInOrder() throws {
        var duo = try Duo(alice: 100, bob: 0)
        duo.sides[0].engine.maxPaymentsPerUpdate = 1
        for id in 1...20 { duo.pay(0, Amount(id), id: UpdateID(id)) }
        #expect(duo.wire[0].count == 1, "only one proposal in flight")
        duo.settle()
        // 1 + ... + 13 = 91 fits in 100; from 14 on each payment exceeds what is left.
        #expect(duo.alice.committedUpdates == Array(1...13))
        #expect(duo.alice.failedUpdates.map(\.0) == Array(14...20))
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(9, 91))
        #expect(duo.bob.engine.committed?.version == 13)
    }
}
