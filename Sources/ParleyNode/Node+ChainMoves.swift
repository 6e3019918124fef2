import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// Games on chain: when a registered game state is ours to move, the move the chain-move
/// handler picks, submitted with `progress`.
extension Node {
    func reconsiderChainMoves() {
        for id in registry.runners.withLock({ $0.values.filter { !$0.status.isClosed }.map(\.id) }).sorted(by: {
            $0.digest.bytes.lexicographicallyPrecedes($1.digest.bytes)
        }) {
            spawn { await self.considerChainMove(id) }
        }
    }
    /// When the chain's registered state of a game is ours to move, asks the chain-move
    /// handler and submits its move (`progress`, signed by us alone). Once per version.
    func considerChainMove(_ id: ChannelID) async {
        guard !stopped, let runner = registry.runners.withLock({ $0[id] }), let rules = apps[runner.params.appID] else { return }
        let chain: ChannelOnChain?
        do { chain = try await settlement.channel(id) } catch {
            sink.yield(.error(id, "reading the chain for an on-chain move: \(error)"))
            return
        }
        guard let chain, !chain.isConcluded, let registered = chain.registeredState, let deadline = chain.deadline,
            !registered.isFinal, rules.mover(in: registered) == runner.me, chainMoves[id] != registered.version
        else { return }
        if announcedTurns[id] != registered.version {
            announcedTurns[id] = registered.version
            sink.yield(.yourTurnOnChain(id, state: registered, deadline: deadline))
        }
        if let unsent = unsentChainMoves[id], unsent.base == registered.version {
            chainMoves[id] = registered.version
            return await submitChainMove(id, unsent.move, unsent.signature, base: registered.version)
        }
        // Recorded as done only once a handler made the move (or the chain refused it for
        // good): without a handler yet, or with the chain out of reach, we look again.
        guard let handler = switches.chainMove.withLock({ $0 }), var next = await handler.move(id, registered) else { return }
        guard chainMoves[id] != registered.version else { return }  // another look got here first
        chainMoves[id] = registered.version
        next.channelID = id
        next.version = registered.version + 1
        guard !next.isFinal else {
            sink.yield(.error(id, "the chain-move handler's move is marked final; a move on chain never is"))
            return
        }
        do { try rules.validateTransition(from: registered, to: next, mover: runner.me) } catch {
            sink.yield(.error(id, "the chain-move handler's move is illegal: \(error.reason)"))
            return
        }
        // Signed through the journal like every signature (invariant 1): never a second
        // state at a version we already signed off chain. A move we already proposed off
        // chain at that version is the move we make.
        let move: ChannelState
        let signature: StateSignature
        do { (move, signature) = try await runner.signForChain(next, from: registered) } catch {
            sink.yield(.error(id, "cannot sign the move on chain: \(error)"))
            return
        }
        if move != next { sink.yield(.error(id, "moving on chain with the move we already proposed off chain, not the handler's")) }
        await submitChainMove(id, move, signature, base: registered.version)
    }

    /// Submits our signed move; when the chain cannot be reached, keeps it and tries again.
    func submitChainMove(_ id: ChannelID, _ move: ChannelState, _ signature: StateSignature, base: UInt64) async {
        do {
            _ = try await settlement.progress(id, to: move, moverSignature: signature)
            unsentChainMoves[id] = nil
        } catch .transport(let why) {
            // The move is journaled and signed; the same move goes again once the chain answers.
            unsentChainMoves[id] = (base, move, signature)
            chainMoves[id] = nil
            sink.yield(.error(id, "moving on chain: the chain is unreachable (\(why)); retrying"))
            let delay = policy.watcher.retryDelay
            let clock = self.clock
            spawn {
                do { try await clock.sleep(for: delay) } catch { return }
                await self.considerChainMove(id)
            }
        } catch {
            unsentChainMoves[id] = nil
            sink.yield(.error(id, "moving on chain: \(error)"))
        }
    }
}
