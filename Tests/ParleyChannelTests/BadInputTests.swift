import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

/// Docs/Protocol.md invariant 6 (bad input changes nothing) and 3 (conservation),
/// one hostile proposal at a time against a responder at version 0.
@Suite(.onBothBackends) struct BadInputTests {
    /// Delivers `message` to bob and returns his effects; checks nothing was journaled or changed.
    private func deliverToBob(_ message: ChannelMessage, in duo: inout Duo) -> [Effect] {
        var bob = duo.bob.engine
        let before = bob.latest
        let effects = bob.handle(.received(message))
        #expect(!effects.contains { if case .journal = $0 { true } else { false } }, "journaled: \(effects)")
        #expect(!effects.contains { if case .decide = $0 { true } else { false } }, "reached the handler: \(effects)")
        #expect(bob.latest == before)
        #expect(bob.phase == .idle)
        return effects
    }

    private func proposal(
        version: UInt64 = 1, _ balances: (Amount, Amount) = (90, 110), appData: [UInt8] = [],
        signer: SigningKey = Fixtures.alice, params: ChannelParams = Fixtures.params()
    ) -> ChannelMessage {
        let state = ChannelState(
            channelID: params.id, version: version, allocation: Allocation(balances.0, balances.1), appData: appData)
        return .propose(state: state, signature: Fixtures.sign(state, signer))
    }

    private func refusal(_ effects: [Effect]) -> UpdateRejection? {
        for case let .notify(.refusedIncoming(why)) in effects { return why }
        return nil
    }

    @Test func wrongChannelIsIgnored() throws {
        var duo = try Duo()
        let other = Fixtures.params(nonce: 99)
        let effects = deliverToBob(proposal(params: other), in: &duo)
        #expect(effects == [.notify(.ignoredMessage(.wrongChannel(expected: duo.params.id, got: other.id)))])
    }

    @Test func badSignatureIsRefused() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal(signer: Fixtures.mallory), in: &duo)
        #expect(refusal(effects) == .badSignature(signer: .first))
    }

    @Test func responderOwnSignatureIsNotTheProposers() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal(signer: Fixtures.bob), in: &duo)
        #expect(refusal(effects) == .badSignature(signer: .first))
    }

    @Test func versionSkipIsRefused() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal(version: 2), in: &duo)
        #expect(refusal(effects) == .versionMismatch(expected: 1, got: 2))
        #expect(duo.bob.engine.highestSeenVersion == 0)
    }

    @Test func hugeVersionCannotExhaustTheVersionSpace() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal(version: UInt64.max), in: &duo)
        #expect(refusal(effects) == .versionMismatch(expected: 1, got: UInt64.max))
    }

    @Test func balanceInflationIsRefused() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal((100, 150)), in: &duo)
        #expect(refusal(effects) == .balanceNotConserved(total: 200, proposed: 250))
    }

    @Test func overflowingBalancesAreRefused() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal((Amount.max, 201)), in: &duo)
        #expect(refusal(effects) == .balanceOverflow)
    }

    @Test func appRuleViolationIsRefused() throws {
        var duo = try Duo()
        let effects = deliverToBob(proposal(appData: [1]), in: &duo)
        #expect(refusal(effects) == .appRuleViolated("payment channels carry no app data"))
    }

    @Test func replayOfAnOldStateIsRefused() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        duo.settle()
        duo.pay(0, 10, id: 2)
        duo.settle()
        // Alice's version-1 proposal again: a replay, stale by one version.
        let effects = deliverToBob(proposal(version: 1, (90, 110)), in: &duo)
        #expect(refusal(effects) == .versionMismatch(expected: 3, got: 1))
    }

    @Test func updateAfterFinalIsRefused() throws {
        var duo = try Duo()
        duo.input(0, .update(1, .finalize))
        duo.settle()
        #expect(duo.alice.engine.phase == .final)
        #expect(duo.bob.engine.phase == .final)
        var bob = duo.bob.engine
        let effects = bob.handle(.received(proposal(version: 2)))
        #expect(refusal(effects) == .updateAfterFinal)
        #expect(effects.contains(.send(.reject(channelID: duo.params.id, version: 2, reason: .channelFinal))))
        duo.pay(0, 1, id: 2)
        #expect(duo.alice.failedUpdates.last?.1 == .refused(.updateAfterFinal))
    }

    @Test func forgedAcceptDoesNotCommit() throws {
        var duo = try Duo()
        duo.pay(0, 10, id: 1)
        guard case let .propose(state, _)? = duo.wire[0].first else { return }
        duo.wire[0].removeAll()
        let forged = ChannelMessage.accept(channelID: duo.params.id, version: 1, signature: Fixtures.sign(state, Fixtures.mallory))
        duo.input(0, .received(forged))
        #expect(duo.alice.engine.committed?.version == 0)
        #expect(duo.alice.engine.phase == .proposing)
        #expect(duo.alice.events.last == .ignoredMessage(.badSignature(signer: .second)))
    }

    @Test func proofWithOneSignatureIsNotBelieved() throws {
        var duo = try Duo()
        duo.disconnect()
        duo.connect()
        duo.wire = [[], []]
        // Bob pretends to be ahead, then "proves" a state Alice never signed.
        duo.input(0, .received(.reestablish(channelID: duo.params.id, committedVersion: 5, highestSignedVersion: 5)))
        let onlyBob = Fixtures.signed(version: 5, (0, 200), by: [.second])
        duo.input(0, .received(.commitProof(onlyBob)))
        #expect(duo.alice.engine.committed?.version == 0)
        #expect(duo.alice.events.last == .ignoredMessage(.missingSignature(signer: .first)))
        let forged = SignedState(state: onlyBob.state, signatures: [Fixtures.sign(onlyBob.state, Fixtures.mallory), onlyBob[.second]])
        duo.input(0, .received(.commitProof(forged)))
        #expect(duo.alice.engine.committed?.version == 0)
        #expect(duo.alice.events.last == .ignoredMessage(.badSignature(signer: .first)))
    }

    @Test func absurdSignedVersionClaimIsIgnored() throws {
        var duo = try Duo()
        duo.disconnect()
        duo.connect()
        duo.wire = [[], []]
        duo.input(0, .received(.reestablish(channelID: duo.params.id, committedVersion: 0, highestSignedVersion: UInt64.max)))
        #expect(duo.alice.engine.highestSeenVersion == 0)
        #expect(duo.alice.engine.phase == .syncing)
    }
}
