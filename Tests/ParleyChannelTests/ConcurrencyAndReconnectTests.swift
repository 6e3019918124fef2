import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

@Suite(.onBothBackends) struct SimultaneousProposalTests {
    @Test func crossingProposalsResolveWithoutDeadlockOrEquivocation() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.pay(1, 20, id: 2)
        // Both proposals are in flight at once, each at version 1.
        #expect(duo.wire[0].count == 1 && duo.wire[1].count == 1)
        duo.settle()
        #expect(duo.violations.isEmpty, "\(duo.violations)")
        #expect(duo.alice.committedUpdates == [1])
        #expect(duo.bob.committedUpdates == [2])
        #expect(duo.alice.engine.committed == duo.bob.engine.committed)
        #expect(duo.alice.engine.committed?.state.allocation == Allocation(110, 90))
        // Version 1 was burned by both; the first seat's retry took 2, the second's 3.
        #expect(duo.alice.engine.committed?.version == 3)
    }

    @Test func firstSeatRetriesAtOnceSecondSeatWaitsForItsTurn() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.pay(1, 20, id: 2)
        duo.deliver(from: 0)  // alice's proposal reaches bob, who refuses it
        duo.deliver(from: 1)  // bob's proposal reaches alice, who refuses it
        duo.deliver(from: 0)  // alice's refusal reaches bob: he backs off
        #expect(duo.bob.retryScheduled, "the second seat backs off")
        duo.deliver(from: 1)  // bob's refusal reaches alice: she re-proposes at once
        #expect(!duo.alice.retryScheduled)
        guard case let .propose(state, _)? = duo.wire[0].first else {
            Issue.record("alice did not retry: \(duo.wire)")
            return
        }
        #expect(state.version == 2)
        #expect(duo.wire[1].isEmpty, "bob waits for its retry timer")
    }
}

@Suite(.onBothBackends) struct ReestablishTests {
    @Test func lostAcceptIsRecoveredFromThePeersProof() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.deliver(from: 0)
        duo.decideAll()
        duo.wire[1].removeAll()  // bob committed version 1; his accept is lost
        duo.input(0, .proposalTimedOut(version: 1))
        #expect(!duo.connected, "a timeout drops the session")
        duo.connect()
        duo.settle()
        #expect(duo.alice.committedUpdates == [1], "alice learns her payment committed")
        #expect(duo.alice.engine.committed == duo.bob.engine.committed)
        #expect(duo.alice.engine.committed?.version == 1)
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func lostProposalIsBurnedAndSentAgainAtTheNextVersion() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.wire[0].removeAll()  // never reaches bob
        duo.input(0, .proposalTimedOut(version: 1))
        duo.connect()
        duo.settle()
        #expect(duo.alice.journal.contains(.aborted(version: 1)))
        #expect(duo.alice.committedUpdates == [1])
        #expect(duo.bob.engine.committed?.version == 2)
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(90, 110))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func undecidedIncomingProposalIsDroppedOnDisconnect() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.deliver(from: 0)
        #expect(duo.bob.engine.phase == .responding)
        duo.disconnect()
        duo.decideAll()  // the handler answers after the session closed: ignored
        #expect(duo.bob.engine.committed?.version == 0)
        #expect(duo.bob.engine.highestSignedVersion == 0)
        duo.connect()
        duo.settle()
        #expect(duo.alice.engine.committed == duo.bob.engine.committed)
        #expect(duo.alice.committedUpdates == [1])
    }

    @Test func updatesQueuedWhileOfflineGoOutAfterReconnect() throws {
        var duo = try Duo()
        duo.disconnect()
        duo.pay(0, 5, id: 1)
        duo.pay(1, 7, id: 2)
        #expect(duo.alice.engine.phase == .offline)
        #expect(duo.wire[0].isEmpty && duo.wire[1].isEmpty)
        duo.connect()
        duo.settle()
        #expect(duo.alice.committedUpdates == [1])
        #expect(duo.bob.committedUpdates == [2])
        #expect(duo.bob.engine.committed?.state.allocation == Allocation(102, 98))
    }
}

@Suite(.onBothBackends) struct PhaseTableTests {
    @Test func nothingLeavesFinal() throws {
        #expect(!Phase.transitions.contains { $0.from == .final })
    }

    @Test func everyLivePhaseCanLoseItsConnection() throws {
        for phase in [Phase.idle, .proposing, .responding, .syncing] {
            #expect(Phase.transitions.contains { $0.from == phase && $0.to == .offline }, "\(phase)")
        }
    }

    @Test func onlyAReconnectLeavesOffline() throws {
        let exits = Phase.transitions.filter { $0.from == .offline }
        #expect(exits.map(\.trigger) == [.connect])
    }

    @Test func everyPhaseIsReachableFromOpening() throws {
        var reached: Set<Phase> = [.opening]
        var frontier: [Phase] = [.opening]
        while let phase = frontier.popLast() {
            for transition in Phase.transitions where transition.from == phase && !reached.contains(transition.to) {
                reached.insert(transition.to)
                frontier.append(transition.to)
            }
        }
        #expect(reached == Set(Phase.allCases))
    }
}

@Suite(.onBothBackends) struct FinalStateTests {
    @Test func finalStateWhoseAcceptWasLostIsLearnedFromTheProof() throws {
        var duo = try Duo()
        duo.pay(0, 30, id: 1)
        duo.settle()
        duo.input(0, .update(2, .finalize))
        duo.deliver(from: 0)
        duo.decideAll()
        #expect(duo.bob.engine.phase == .final)
        duo.wire[1].removeAll()  // the accept of the final state is lost
        duo.input(0, .proposalTimedOut(version: 2))
        duo.connect()
        duo.settle()
        #expect(duo.alice.engine.phase == .final)
        #expect(duo.alice.committedUpdates == [1, 2])
        #expect(duo.alice.engine.latest == duo.bob.engine.latest)
        #expect(duo.transitionsSeen.contains(Phase.Transition(from: .syncing, to: .final, trigger: .proof)))
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }
}

@Suite(.onBothBackends) struct RestoreTests {
    @Test func restoredEngineNeverSignsAVersionItSignedBeforeTheCrash() throws {
        let params = Fixtures.params()
        // Before the crash: version 3 committed, our proposal 5 signed and sent, fate unknown.
        var engine = try ChannelEngine.restore(
            params: params, latest: Fixtures.signed(version: 3, (97, 103)), highestSignedVersion: 5, key: Fixtures.signer(Fixtures.alice))
        #expect(engine.phase == .offline)
        let hello = engine.handle(.connected)
        #expect(hello == [.send(.reestablish(channelID: params.id, committedVersion: 3, highestSignedVersion: 5))])
        _ = engine.handle(.received(.reestablish(channelID: params.id, committedVersion: 3, highestSignedVersion: 4)))
        #expect(engine.phase == .idle)
        let proposing = engine.handle(.update(1, .pay(amount: 1)))
        guard case let .send(.propose(state, _))? = proposing.last else {
            Issue.record("no proposal: \(proposing)")
            return
        }
        #expect(state.version == 6, "versions up to 5 were signed before the crash")
    }

    @Test func restoreRefusesAStateWithAForgedSignature() {
        let params = Fixtures.params()
        var forged = Fixtures.signed(version: 3, (97, 103))
        forged[.second] = Fixtures.sign(forged.state, Fixtures.mallory)
        #expect(throws: OpenRejection.invalidInitialState(.badSignature(signer: .second))) {
            try ChannelEngine.restore(params: params, latest: forged, highestSignedVersion: 3, key: Fixtures.signer(Fixtures.alice))
        }
    }
}
