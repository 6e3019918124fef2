import ParleyCrypto
import Testing

@testable import ParleyChannel

/// Issue 15, item 1: a final state we signed but that did not commit can still be held,
/// countersigned, by the peer, and it concludes the channel the moment it is registered.
/// Mallory (bob's seat) countersigns alice's close privately and answers "declined" (or
/// claims at reestablish that it never committed); nothing alice accepts afterwards may be
/// worth more to her than that final state, so the channel only closes.
@Suite(.onBothBackends) struct DeclinedFinalStateTests {
    /// Alice pays 10, then proposes the close; Mallory keeps a countersigned copy of the
    /// final state and answers "declined". Returns the duo and the final state Mallory holds.
    static func closeDeclinedByMallory() throws -> (Duo, SignedState) {
        var duo = try Duo(alice: 100, bob: 100)
        duo.pay(0, 10, id: 1)
        duo.settle()
        duo.input(0, .update(2, .finalize))
        guard case let .propose(final, aliceSignature)? = duo.wire[0].last else {
            throw InvariantViolation(description: "alice did not propose the close")
        }
        duo.deliver(from: 0)
        let held = SignedState(state: final, signatures: [aliceSignature, Fixtures.sign(final, Fixtures.bob)])
        duo.sides[1].decisions.removeAll()
        duo.input(1, .decided(version: final.version, .reject("not now")))
        duo.deliverAll()
        return (duo, held)
    }

    @Test func aPaymentToUsAfterADeclinedCloseIsRefused() throws {
        var (duo, held) = try Self.closeDeclinedByMallory()
        #expect(held.isFullySigned && held.state.isFinal)
        #expect(duo.alice.engine.uncommittedFinal?.state == held.state)
        // Mallory now "pays" alice 50 at the next version; accepting it would be worthless,
        // since Mallory then registers the final state, which concludes at once.
        var bribe = duo.alice.engine.latest.state
        bribe.version = held.version + 1
        bribe.allocation = Allocation(bribe.allocation[.first] + 50, bribe.allocation[.second] - 50)
        duo.input(0, .received(.propose(state: bribe, signature: Fixtures.sign(bribe, Fixtures.bob))))
        #expect(duo.alice.decisions.isEmpty, "alice's update handler was asked about a state she must refuse")
        #expect(duo.alice.engine.latest.version == held.version - 1)
        #expect(duo.alice.events.contains(.refusedIncoming(.finalStateOutstanding(version: held.version))))
        guard case .reject? = duo.wire[0].last else {
            Issue.record("alice did not answer the proposal with a rejection: \(duo.wire[0])")
            return
        }
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func ourOwnPaymentAfterADeclinedCloseIsRefusedButTheCloseMayBeOfferedAgain() throws {
        var (duo, held) = try Self.closeDeclinedByMallory()
        duo.pay(0, 5, id: 3)
        #expect(duo.alice.failedUpdates.contains { $0 == (3, .refused(.finalStateOutstanding(version: held.version))) })
        // The close itself may be offered again (same balances, a fresh version).
        duo.input(0, .update(4, .finalize))
        guard case let .propose(again, _)? = duo.wire[0].last else {
            Issue.record("alice did not offer the close again")
            return
        }
        #expect(again.isFinal && again.allocation == held.state.allocation && again.version > held.version)
        duo.settle()
        #expect(duo.alice.engine.phase == .final && duo.bob.engine.phase == .final)
        #expect(duo.alice.engine.uncommittedFinal == nil)
        #expect(duo.violations.isEmpty, "\(duo.violations)")
    }

    @Test func aCloseOfDifferentBalancesIsRefusedToo() throws {
        var (duo, held) = try Self.closeDeclinedByMallory()
        var other = held.state
        other.version = held.version + 1
        other.allocation = Allocation(other.allocation[.first] + 1, other.allocation[.second] - 1)
        duo.input(0, .received(.propose(state: other, signature: Fixtures.sign(other, Fixtures.bob))))
        #expect(duo.alice.decisions.isEmpty)
        #expect(duo.alice.events.contains(.refusedIncoming(.finalStateOutstanding(version: held.version))))
    }

    /// The same attack through reestablish: the close is in flight when the session drops,
    /// and Mallory claims she never committed it. Alice offers the close again; Mallory
    /// declines that too, then "pays" Alice: refused by the final-state rule itself.
    @Test func aCloseMalloryClaimsNeverCommittedStillFreezesUpdates() throws {
        var duo = try Duo(alice: 100, bob: 100)
        duo.pay(0, 10, id: 1)
        duo.settle()
        duo.input(0, .update(2, .finalize))
        guard case let .propose(final, _)? = duo.wire[0].last else {
            Issue.record("alice did not propose the close")
            return
        }
        duo.disconnect()
        duo.input(0, .connected)
        duo.input(0, .received(.reestablish(
            channelID: duo.params.id, committedVersion: final.version - 1, highestSignedVersion: final.version - 1)))
        // Alice re-offers the close (journaled; the Duo's wire drops it while down); Mallory declines it too.
        guard case let .signed(signed)? = duo.alice.journal.last, signed.state.isFinal, signed.version > final.version else {
            Issue.record("alice did not offer the close again: \(duo.alice.journal)")
            return
        }
        #expect(signed.state.allocation == final.allocation, "the close offered again pays what the first one did")
        duo.input(0, .received(.reject(channelID: duo.params.id, version: signed.version, reason: .declined("no"))))
        #expect(duo.alice.engine.phase == .idle)
        let outstanding = try #require(duo.alice.engine.uncommittedFinal)
        var bribe = duo.alice.engine.latest.state
        bribe.version = duo.alice.engine.highestSeenVersion + 1
        bribe.allocation = Allocation(bribe.allocation[.first] + 50, bribe.allocation[.second] - 50)
        duo.input(0, .received(.propose(state: bribe, signature: Fixtures.sign(bribe, Fixtures.bob))))
        #expect(duo.alice.decisions.isEmpty)
        #expect(duo.alice.engine.latest.version == final.version - 1)
        #expect(duo.alice.events.contains(.refusedIncoming(.finalStateOutstanding(version: outstanding.version))))
    }

    /// After a restart the rule still holds: the journal's record of the uncommitted final
    /// state comes back into the engine.
    @Test func aRestoredEngineRemembersTheOutstandingFinalState() throws {
        let (duo, held) = try Self.closeDeclinedByMallory()
        var mine = SignedState(state: held.state)
        mine[.first] = held[.first]
        var restored = try ChannelEngine.restore(
            params: duo.params, latest: duo.alice.engine.latest, highestSignedVersion: held.version,
            signedFinal: mine, key: Fixtures.signer(Fixtures.alice))
        #expect(restored.uncommittedFinal == mine)
        var bribe = restored.latest.state
        bribe.version = held.version + 1
        bribe.allocation = Allocation(bribe.allocation[.first] + 1, bribe.allocation[.second] - 1)
        _ = restored.handle(.connected)
        _ = restored.handle(.received(.reestablish(channelID: duo.params.id, committedVersion: restored.latest.version, highestSignedVersion: held.version)))
        let effects = restored.handle(.received(.propose(state: bribe, signature: Fixtures.sign(bribe, Fixtures.bob))))
        #expect(!effects.contains { if case .decide = $0 { true } else { false } })
    }
}

/// Moves made on chain (`progress`) are signatures too: one state per version, ever.
@Suite(.onBothBackends) struct ChainMoveSigningTests {
    @Test func aMoveOnChainIsNeverSignedAtAVersionWeSignedOffChain() throws {
        var duo = try Duo(alice: 100, bob: 100)
        duo.pay(0, 10, id: 1)  // in flight at version 1, never answered
        guard case let .propose(pending, pendingSignature)? = duo.wire[0].last else {
            Issue.record("alice did not propose")
            return
        }
        var engine = duo.alice.engine
        // A different state at the version of the proposal in flight: refused.
        var other = pending
        other.allocation = Allocation(100, 100)
        #expect(throws: UpdateRejection.versionAlreadySigned(pending.version)) { try engine.signForChain(other) }
        // The very state already signed: its signature again, nothing new to journal.
        let (again, record) = try engine.signForChain(pending)
        #expect(again == pendingSignature && record == nil)
        // A fresh version: signed, to be journaled, and the version is now used.
        var next = pending
        next.version = pending.version + 1
        let (signature, fresh) = try engine.signForChain(next)
        #expect(fresh?.state == next && fresh?[.first] == signature)
        #expect(engine.highestSignedVersion == next.version)
        #expect(throws: UpdateRejection.versionAlreadySigned(next.version)) {
            var twin = next
            twin.appData = []
            twin.allocation = Allocation(99, 101)
            _ = try engine.signForChain(twin)
        }
    }
}
