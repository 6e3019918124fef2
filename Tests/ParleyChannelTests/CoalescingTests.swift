import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

/// Payments waiting together on one channel go out in one update (`proposeNext`), and the
/// outcome of each stays what it would have been alone. `Duo` checks throughout that only
/// payments ride together, that the state pays exactly their sum, and that every request is
/// answered once; the engine simulation runs bursts of payments under every fault.
@Suite(.onBothBackends) struct CoalescingTests {
    @Test func paymentsQueuedBehindAProposalGoOutTogetherInOrder() throws {
        var duo = try Duo(alice: 100, bob: 0)
        for id in 1...20 { duo.pay(0, Amount(id), id: UpdateID(id)) }
        #expect(duo.wire[0].count == 1, "only one proposal in flight")
        duo.settle()
        // Payment 1 went alone; 2...13 (sum 90) rode together in version 2, the most the
        // remaining 99 covers; 14...20 each exceed the 9 left, alone as without coalescing.
        #expect(duo.alice.committedUpdates == Array(1...13))
        #expect(duo.alice.failedUpdates.map(\.0) == Array(14...20))
        for (_, failure) in duo.alice.failedUpdates {
            guard case .refused(.insufficientFunds(available: 9, _)) = failure else {
                Issue.record("payments beyond the balance fail as they would alone: \(failure)")
                continue
            }
        }
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(9, 91))
        #expect(duo.bob.engine.committed?.version == 2, "two updates carried thirteen payments")
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func oneUpdateCarriesAtMostMaxPaymentsPerUpdate() throws {
        var duo = try Duo(alice: 1_000, bob: 0)
        duo.sides[0].engine.maxPaymentsPerUpdate = 4
        for id in 1...11 { duo.pay(0, 1, id: UpdateID(id)) }
        duo.settle()
        // 1 alone, then 2-5, 6-9, 10-11.
        #expect(duo.alice.committedUpdates == Array(1...11))
        #expect(duo.bob.engine.committed?.version == 4)
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(989, 11))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func aRequestThatIsNotAPaymentEndsTheBatchAndKeepsItsPlace() throws {
        var duo = try Duo(alice: 100, bob: 0)
        duo.pay(0, 1, id: 1)  // in flight
        duo.pay(0, 2, id: 2)
        duo.pay(0, 3, id: 3)
        duo.input(0, .update(4, .finalize))
        duo.pay(0, 4, id: 5)
        duo.settle()
        // 1; then 2+3 together; then the close alone; the payment after a final state fails.
        #expect(duo.alice.committedUpdates == [1, 2, 3, 4])
        #expect(duo.alice.failedUpdates.map(\.0) == [5])
        #expect(duo.bob.engine.committed?.version == 3)
        #expect(duo.bob.engine.committed?.state.isFinal == true)
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(94, 6))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    /// The peer's handler sees only the sum of a batch, so its "no" says nothing about any one
    /// payment: each is asked about again alone and gets its own answer.
    @Test func aBatchThePeerDeclinesIsSplitAndEachPaymentGetsItsOwnAnswer() throws {
        var duo = try Duo(alice: 100, bob: 0)
        duo.pay(0, 1, id: 1)
        for (id, amount) in [(2, 3), (3, 9), (4, 2)] { duo.pay(0, Amount(amount), id: UpdateID(id)) }
        var asked: [Amount] = []
        // Bob takes at most 5 per update.
        try Self.run(&duo) { proposed in
            asked.append(proposed)
            return proposed <= 5 ? .accept : .reject("at most 5 per update")
        }
        #expect(asked == [1, 14, 3, 9, 2], "one alone, the batch, then each of its payments alone")
        #expect(duo.alice.committedUpdates == [1, 2, 4])
        #expect(duo.alice.failedUpdates.count == 1)
        if let (id, failure) = duo.alice.failedUpdates.first {
            #expect(id == 3)
            #expect(failure == .rejected(.declined("at most 5 per update")))
        }
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(94, 6))
        // Versions: 1 (1), 2 (the batch, burned), 3 (3), 4 (9, burned), 5 (2).
        #expect(duo.bob.engine.committed?.version == 5)
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func paymentsSplitFromARefusedBatchDoNotRegroupButLaterOnesDo() throws {
        var duo = try Duo(alice: 100, bob: 0)
        duo.pay(0, 1, id: 1)
        duo.pay(0, 2, id: 2)
        duo.pay(0, 2, id: 3)
        var asked: [Amount] = []
        var refusedOnce = false
        try Self.run(&duo) { proposed in
            asked.append(proposed)
            if proposed == 4, !refusedOnce {
                refusedOnce = true
                // While the batch is refused, two more payments arrive behind it.
                return .reject("not now")
            }
            return .accept
        } between: { duo, round in
            if round == 2 {
                duo.pay(0, 5, id: 4)
                duo.pay(0, 5, id: 5)
            }
        }
        #expect(duo.alice.committedUpdates.sorted() == [1, 2, 3, 4, 5])
        #expect(asked.prefix(2) == [1, 4])
        #expect(asked.suffix(3) == [2, 2, 10], "2 and 3 alone, then 4 and 5 together: \(asked)")
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(85, 15))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func aBatchRefusedBecauseTheChannelIsFinalFailsEveryPaymentInIt() throws {
        var duo = try Duo(alice: 100, bob: 0)
        duo.pay(0, 1, id: 1)
        duo.pay(0, 2, id: 2)
        duo.pay(0, 3, id: 3)
        duo.deliver(from: 0)
        duo.decideAll()
        duo.deliver(from: 1)  // 1 committed; the batch (2, 3) is in flight to Bob
        guard case let .propose(state, _)? = duo.wire[0].first else {
            Issue.record("the batch is not in flight: \(duo.wire[0])")
            return
        }
        duo.wire[0].removeAll()
        // Bob's answer to the batch, as a peer whose channel went final would give it.
        duo.input(0, .received(.reject(channelID: duo.params.id, version: state.version, reason: .channelFinal)))
        #expect(duo.alice.failedUpdates.map(\.0) == [2, 3])
        #expect(duo.alice.failedUpdates.allSatisfy { $0.1 == .rejected(.channelFinal) })
    }

    @Test func aBatchLostToASimultaneousProposalGoesOutAgainWhole() throws {
        var duo = try Duo(alice: 100, bob: 100)
        duo.pay(0, 1, id: 1)
        duo.deliverAll()
        duo.decideAll()
        duo.deliverAll()
        // Alice's batch and Bob's payment cross on the wire.
        duo.pay(0, 1, id: 2)
        duo.pay(0, 1, id: 3)
        duo.pay(1, 5, id: 100)
        #expect(duo.wire[0].count == 1 && duo.wire[1].count == 1)
        duo.settle()
        #expect(duo.alice.committedUpdates == [1, 2, 3])
        #expect(duo.bob.committedUpdates == [100])
        #expect(duo.alice.engine.committed == duo.bob.engine.committed)
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(102, 98))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func aBatchInFlightAcrossADisconnectSettlesEveryPaymentOnce() throws {
        for peerCommitted in [false, true] {
            var duo = try Duo(alice: 100, bob: 0)
            duo.pay(0, 1, id: 1)
            duo.pay(0, 2, id: 2)
            duo.pay(0, 3, id: 3)
            duo.deliverAll()
            duo.decideAll()
            duo.deliverAll()  // 1 committed, the batch (2, 3) proposed
            if peerCommitted {
                duo.deliver(from: 0)
                duo.decideAll()  // Bob countersigns; his accept is lost with the session
            }
            duo.disconnect()
            duo.connect()
            duo.settle()
            #expect(duo.alice.committedUpdates == [1, 2, 3], "peer committed: \(peerCommitted)")
            #expect(duo.bob.engine.committed?.state.allocation == Allocation(94, 6))
            #expect(duo.alice.unsettled.isEmpty)
            #expect(duo.violations.isEmpty, "\(duo.violations)")
        }
    }

    /// Drives `duo` to quiescence, answering each of Bob's decisions with `answer(amount)`
    /// (what the proposal pays Bob); `between` runs before each round.
    static func run(
        _ duo: inout Duo, answer: (Amount) -> Decision, between: (inout Duo, Int) -> Void = { _, _ in }
    ) throws {
        for round in 0..<100 {
            between(&duo, round)
            duo.deliverAll()
            guard let version = duo.sides[1].decisions.popFirst() else {
                if duo.wire.allSatisfy(\.isEmpty) { return }
                continue
            }
            guard let proposal = duo.sides[1].engine.incoming, proposal.version == version else {
                throw InvariantViolation(description: "no incoming proposal at v\(version)")
            }
            let paid = proposal.state.allocation[.second] - duo.sides[1].engine.latest.state.allocation[.second]
            duo.input(1, .decided(version: version, answer(paid)))
        }
        throw InvariantViolation(description: "no quiescence")
    }
}
