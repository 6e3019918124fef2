import ParleyCrypto
import Testing

@testable import ParleyChannel

/// A game with strict turns: app data is one byte, the count of moves; the first seat moves
/// when it is even. Enough to pin the engine's rules for apps with turns.
private struct TurnsApp: AppRules {
    static let id = (try? AppID("test.turns/1")) ?? .payment
    var appID: AppID { Self.id }

    func mover(in state: ChannelState) -> ParticipantIndex? {
        guard let moves = state.appData.first else { return nil }
        return moves.isMultiple(of: 2) ? .first : .second
    }

    func validateInitial(_ state: ChannelState) throws(AppRuleViolation) {
        guard state.appData == [0] else { throw AppRuleViolation("starts at zero moves") }
    }

    func validateTransition(from current: ChannelState, to next: ChannelState, mover: ParticipantIndex) throws(AppRuleViolation) {
        if next.isFinal {
            guard next.appData == current.appData, next.allocation == current.allocation else {
                throw AppRuleViolation("a close repeats the state")
            }
            return
        }
        guard self.mover(in: current) == mover else { throw AppRuleViolation("not your turn") }
        guard let moves = current.appData.first, next.appData == [moves &+ 1], next.allocation == current.allocation else {
            throw AppRuleViolation("a move adds one")
        }
    }
}

/// The rules that keep an honest player able to move on chain whatever the peer did off
/// chain (the simulator found each gap, issue 16): on chain, our moves from the latest
/// state are made at the versions after it, so we never sign a state off chain at a version
/// where we might have to sign another one on chain.
@Suite(.onBothBackends) struct GameTurnSigningTests {
    /// Alice (first seat, to move at version 0) and Bob, with the handshake delivered.
    static func game() throws -> (alice: ChannelEngine, bob: ChannelEngine, params: ChannelParams) {
        let params = Fixtures.params(app: TurnsApp.id)
        let (alice, openEffects) = try ChannelEngine.propose(
            params: params, allocation: Allocation(50, 50), appData: [0], key: Fixtures.signer(Fixtures.alice), rules: TurnsApp())
        guard case let .send(.openProposal(proposal))? = openEffects.last else { throw Failure("no proposal") }
        let (bob, acceptEffects) = try ChannelEngine.accept(proposal, key: Fixtures.signer(Fixtures.bob), rules: TurnsApp())
        guard case let .send(.openAccept(_, signature))? = acceptEffects.last else { throw Failure("no accept") }
        var opened = alice
        _ = opened.handle(.received(.openAccept(channelID: params.id, signature: signature)))
        return (opened, bob, params)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test func paymentsNeverRideTogetherInAGame() throws {
        var (alice, _, _) = try Self.game()
        alice.queue = [.init(id: 2, intent: .pay(amount: 1)), .init(id: 3, intent: .pay(amount: 1))]
        #expect(alice.riders(after: .init(id: 1, intent: .pay(amount: 1))).riders.isEmpty, "a game's updates go one by one")
        #expect(alice.queue.count == 2)
    }

    static func failure(in effects: [Effect]) -> UpdateFailure? {
        for effect in effects { if case let .notify(.updateFailed(_, failure)) = effect { return failure } }
        return nil
    }

    @Test func aCloseIsRefusedOnOurOwnTurnAndProposedOnThePeers() throws {
        var (alice, bob, _) = try Self.game()
        // Alice's move: a close now would sign version 1, where her first move on chain goes.
        let refused = alice.handle(.update(1, .finalize))
        #expect(Self.failure(in: refused) == .refused(.closeOnOwnTurn(version: 0)))
        #expect(alice.highestSignedVersion == 0, "nothing was signed")
        // Bob's side: it is Alice's move, so Bob may offer the close.
        let offered = bob.handle(.update(1, .finalize))
        #expect(offered.contains { if case let .send(.propose(state, _)) = $0 { state.isFinal } else { false } })
    }

    @Test func aMoveAfterAVersionWasUsedUpMustGoOnChain() throws {
        var (alice, _, params) = try Self.game()
        // Bob proposes at version 1 although it is Alice's move; Alice refuses, version 1 is used up.
        var bogus = alice.latest.state
        bogus.version = 1
        bogus.appData = [1]
        _ = alice.handle(.received(.propose(state: bogus, signature: Fixtures.sign(bogus, Fixtures.bob))))
        #expect(alice.highestSeenVersion == 1 && alice.highestSignedVersion == 0)
        // Her move would now be at version 2. If the game then went on chain from version 0,
        // her moves there would be at versions after 0 that a later off-chain move could
        // take with another state. The engine refuses; she disputes instead.
        let effects = alice.handle(.update(2, .replace(base: 0, allocation: Allocation(50, 50), appData: [1], isFinal: false)))
        #expect(Self.failure(in: effects) == .refused(.moveMustGoOnChain(version: 1)))
        // On chain she may still move at version 1: she never signed there.
        var move = alice.latest.state
        move.version = 1
        move.appData = [1]
        let (signature, record) = try alice.signForChain(move)
        #expect(record?.state == move && params.isSigned(move, by: .first, with: signature))
    }

    @Test func aMoveOnChainReusesTheProposalThePeerLeftUnanswered() throws {
        var (alice, _, _) = try Self.game()
        let effects = alice.handle(.update(1, .replace(base: 0, allocation: Allocation(50, 50), appData: [1], isFinal: false)))
        guard case let .send(.propose(proposed, proposedSignature))? = effects.last(where: {
            if case .send(.propose) = $0 { true } else { false }
        }) else {
            Issue.record("alice did not propose her move")
            return
        }
        // The peer refuses it: version 1 is burned, but it is still the state Alice signed there.
        _ = alice.handle(.received(.reject(channelID: proposed.channelID, version: 1, reason: .declined("no"))))
        #expect(alice.signedNext?.state == proposed)
        // On chain from version 0 her move at version 1 is that state, and no other.
        let (again, record) = try alice.signForChain(proposed)
        #expect(again == proposedSignature && record == nil)
        var other = proposed
        other.appData = [1]
        other.allocation = Allocation(49, 51)
        #expect(throws: UpdateRejection.versionAlreadySigned(1)) { _ = try alice.signForChain(other) }
    }

    @Test func theStateSignedAtTheNextVersionSurvivesARestart() throws {
        var (alice, _, params) = try Self.game()
        let effects = alice.handle(.update(1, .replace(base: 0, allocation: Allocation(50, 50), appData: [1], isFinal: false)))
        guard case let .journal(.signed(signed))? = effects.first(where: { if case .journal(.signed) = $0 { true } else { false } })
        else {
            Issue.record("no signed record")
            return
        }
        let restored = try ChannelEngine.restore(
            params: params, latest: alice.latest, highestSignedVersion: 1, signedNext: signed, key: Fixtures.signer(Fixtures.alice),
            rules: TurnsApp())
        #expect(restored.signedNext == signed)
        var restarted = restored
        var different = signed.state
        different.allocation = Allocation(40, 60)
        #expect(throws: UpdateRejection.versionAlreadySigned(1)) { _ = try restarted.signForChain(different) }
        #expect(try restarted.signForChain(signed.state).journal == nil)
    }
}
