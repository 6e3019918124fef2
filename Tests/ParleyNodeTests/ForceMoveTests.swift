import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyGames
import ParleySettlement
import ParleyTestSupport
import ParleyTransport
import ParleyWire
import Synchronization
import Testing

@testable import ParleyNode

/// Force-move end to end: two nodes play tic-tac-toe over loopback TCP; one stops moving
/// off-chain; the other registers after the turn timeout. The silent player either forfeits
/// when the window closes, or answers on chain and the game goes on there, move by move.
@Suite("force-move", .serialized, .timeLimit(.minutes(2)))
struct ForceMoveTests {
    static let stake: Amount = 50

    /// Alice (X) and Bob (O) with a tic-tac-toe channel open and funded.
    struct Game {
        let chain: any ScenarioChain
        let alice: Node
        let bob: Node
        let channel: Channel
        let aliceLog: NodeEventLog
        let bobLog: NodeEventLog
        let root: String
        let aliceKey: SigningKey
        let bobKey: SigningKey

        func shutDown() async {
            await alice.shutDown()
            await bob.shutDown()
            await chain.shutDown()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    static func start(_ backend: ChainBackend) async throws -> Game {
        let chain = try backend.make()
        let root = try makeTemporaryDirectory("parley-force-move")
        let aliceKey = SigningKey()
        let bobKey = SigningKey()
        for key in [aliceKey, bobKey] { try await chain.adapter(for: key).mint(stake, to: key.publicKey) }
        // Fast clock polling, but funding and disconnect limits a loaded CI machine cannot trip.
        let watcher = WatcherPolicy(
            disconnectGrace: .seconds(30), fundingTimeout: .seconds(30), clockPollInterval: .milliseconds(10),
            retryDelay: .milliseconds(20))
        let policy = NodePolicy(
            watcher: watcher, proposalTimeout: .seconds(2), challengeDuration: 60, turnTimeout: .milliseconds(300))
        let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let bob = try await Node(
            identity: bobKey, listen: .loopbackIPv4(port: 0), journal: root + "/bob", settlement: chain.adapter(for: bobKey),
            policy: policy, logger: quiet, apps: [TicTacToe()])
        let alice = try await Node(
            identity: aliceKey, listen: nil, journal: root + "/alice", settlement: chain.adapter(for: aliceKey),
            policy: policy, logger: quiet, apps: [TicTacToe()])
        for node in [alice, bob] { node.setUpdateHandler { _ in .accept } }  // the rules already checked the move
        bob.setOpenHandler { $0.appID == TicTacToe.id }
        let bobLog = NodeEventLog(bob)
        let aliceLog = NodeEventLog(alice)
        let address = try #require(await bob.listeningAddress)
        let channel = try await alice.open(
            with: bobKey.publicKey, at: address, deposit: stake, theirs: stake, app: TicTacToe.id,
            appData: TicTacToe.initialAppData)
        return Game(
            chain: chain, alice: alice, bob: bob, channel: channel, aliceLog: aliceLog, bobLog: bobLog, root: root,
            aliceKey: aliceKey, bobKey: bobKey)
    }

    /// A player that takes the first free cell from its list.
    static func player(_ preferences: [Int]) -> ChainMoveHandler {
        { _, state in
            guard let board = try? TicTacToe.Board(appData: state.appData),
                let cell = preferences.first(where: { board.mark(at: $0) == nil })
            else { return nil }
            return try? TicTacToe.move(cell, in: state)
        }
    }

    @Test("a player who stops moving forfeits when the window closes", arguments: ChainBackend.allCases)
    func silentPlayerForfeits(_ backend: ChainBackend) async throws {
        let game = try await Self.start(backend)
        do {
            try await game.channel.update { try $0 = TicTacToe.move(4, in: $0) }  // X in the centre: Bob's turn
            game.bob.setSilent(true)  // Bob stops playing (and has no chain-move handler)
            let exit = try await game.aliceLog.wait { event -> UInt64? in
                if case let .exitStarted(_, version, .peerUnresponsive) = event { return version }
                return nil
            }
            #expect(exit == 1, "Alice registers the state in which Bob must move")
            #expect(try await game.bobLog.wait { event -> Bool? in
                if case .yourTurnOnChain = event { return true }
                return nil
            })
            try await game.chain.advance(by: 61)
            let payout = try await game.aliceLog.wait { event -> Allocation? in
                if case let .concluded(_, _, allocation) = event { return allocation }
                return nil
            }
            #expect(payout == Allocation(2 * Self.stake, 0), "Bob forfeits: the whole pot goes to Alice")
            try await game.channel.waitUntilClosed()
            #expect(try await game.chain.adapter(for: game.aliceKey).balance(of: game.aliceKey.publicKey) == 2 * Self.stake)
            #expect(try await game.chain.adapter(for: game.bobKey).balance(of: game.bobKey.publicKey) == 0)
        } catch {
            await game.shutDown()
            throw error
        }
        await game.shutDown()
    }

    @Test("a player who answers on chain keeps playing there until the game ends", arguments: ChainBackend.allCases)
    func gameContinuesOnChain(_ backend: ChainBackend) async throws {
        let game = try await Self.start(backend)
        do {
            game.alice.setChainMoveHandler(Self.player([2, 6, 1, 3, 5, 7, 8]))
            game.bob.setChainMoveHandler(Self.player([0, 8, 1, 3, 5, 7]))
            try await game.channel.update { try $0 = TicTacToe.move(4, in: $0) }
            game.bob.setSilent(true)  // off-chain only: Bob still follows the chain and moves there
            // O@0 (v2), X@2 (v3), O@8 (v4), X@6 (v5): X wins on the 2-4-6 diagonal, on chain.
            let moves = try await game.aliceLog.wait { event -> [UInt64]? in nil } orAll: { events in
                let versions = events.compactMap { event -> UInt64? in
                    if case let .progressed(_, version, _, _) = event { return version }
                    return nil
                }
                return versions.count >= 4 ? versions : nil
            }
            #expect(moves == [2, 3, 4, 5])
            try await game.chain.advance(by: 61)
            let payout = try await game.aliceLog.wait { event -> (UInt64, Allocation)? in
                if case let .concluded(_, version, allocation) = event { return (version, allocation) }
                return nil
            }
            #expect(payout.0 == 5)
            #expect(payout.1 == Allocation(2 * Self.stake, 0), "X won on chain: winner takes all")
            try await game.channel.waitUntilClosed()
            #expect(try await game.chain.adapter(for: game.aliceKey).balance(of: game.aliceKey.publicKey) == 2 * Self.stake)
        } catch {
            await game.shutDown()
            throw error
        }
        await game.shutDown()
    }

    /// Issue 15: a move on chain is a signature like any other. Alice's off-chain move at
    /// version 3 goes unanswered; on chain, her chain-move handler picks another cell for
    /// version 3. Signing that would be two states of one version: she makes the move she
    /// already signed instead.
    @Test("a move on chain never re-signs a version already signed off chain")
    func chainMoveReusesTheMoveAlreadyProposed() async throws {
        let game = try await Self.start(.local)
        do {
            game.alice.setChainMoveHandler(Self.player([2]))
            try await game.channel.update { try $0 = TicTacToe.move(4, in: $0) }  // v1: X centre
            let bobChannel = try #require(await game.bob.channel(game.channel.id))
            #expect(await eventually { (try? bobChannel.status.latest.version) == 1 })
            try await bobChannel.update { try $0 = TicTacToe.move(0, in: $0) }  // v2: O corner, X to move
            game.bob.setSilent(true)
            // v3, X in cell 8: signed, sent, never answered; the proposal timeout makes Alice exit.
            await #expect(throws: NodeError.self) { try await game.channel.update { try $0 = TicTacToe.move(8, in: $0) } }
            let progressed = try await game.aliceLog.wait { event -> UInt64? in
                if case let .progressed(_, version, _, .first) = event { return version }
                return nil
            }
            #expect(progressed == 3)
            let onChain = try #require(try await game.chain.adapter(for: game.aliceKey).channel(game.channel.id)?.registeredState)
            let board = try TicTacToe.Board(appData: onChain.appData)
            #expect(board.mark(at: 8) != nil && board.mark(at: 2) == nil, "Alice signed a second version-3 state: \(board)")
        } catch {
            await game.shutDown()
            throw error
        }
        await game.shutDown()
    }
}

extension NodeEventLog {
    /// The first event `match` accepts, waiting up to 20 s.
    func wait<T>(_ match: @escaping (NodeEvent) -> T?) async throws -> T {
        try await wait(match, orAll: { _ in nil })
    }

    /// The first event `match` accepts, or what `whole` finds in all events so far.
    func wait<T>(_ match: @escaping (NodeEvent) -> T?, orAll whole: ([NodeEvent]) -> T?) async throws -> T {
        let end = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < end {
            let seen = all
            if let found = seen.lazy.compactMap(match).first ?? whole(seen) { return found }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw HarnessError("timed out waiting for an event; saw \(all)")
    }
}
