import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// Drill and demo switches: ways to make this node misbehave on purpose, so drills and
/// tests can check that the *other* node copes. `package` access: no user of the library
/// sees them.
extension Node {
    /// Drill and demo switch: while silent, this node drops every channel message it
    /// receives and sends none (its sessions stay up, its watcher keeps following the
    /// chain). This is how a peer that "stops answering" is simulated.
    package nonisolated func setSilent(_ isSilent: Bool) {
        switches.silent.store(isSilent, ordering: .relaxed)
    }

    /// Drill switch: while offline the node has no peer sessions at all — links stopped,
    /// sessions closed, inbound handshakes refused — as if the network were cut. Back
    /// online, it redials the peers it dialled before. Channels and the watcher carry on.
    package func setOffline(_ offline: Bool) async {
        switches.offline.store(offline, ordering: .relaxed)
        if offline {
            for (peer, state) in peers {
                peers[peer]?.link = nil
                await state.link?.stop()
                state.session?.close(reason: "node went offline")
            }
        } else {
            let open = Set(registry.runners.withLock { $0.values.filter { !$0.status.isClosed }.map(\.peer) })
            for peer in open { if let address = addresses[peer] { startLink(to: peer, at: address) } }
        }
    }

    /// Drill switch, the attack of issue 15 item 1: while on, this node answers every final
    /// state the peer proposes with "declined", but first countersigns it in secret (outside
    /// its journal) and keeps it (``heldFinalState(_:)``), to register it later. An honest
    /// peer must then take no more updates on that channel.
    package nonisolated func setHoldingDeclinedFinals(_ on: Bool) {
        switches.holdFinals.store(on, ordering: .relaxed)
    }

    /// The final state this node countersigned in secret on channel `id` (drills).
    package nonisolated func heldFinalState(_ id: ChannelID) -> SignedState? {
        switches.heldFinals.withLock { $0[id] }
    }

    /// Drill tool, the attack of issue 15 item 4: the player to move tries to end a game on
    /// chain by "moving" to a final copy of the registered state, signed by itself alone.
    /// The chain must refuse it (`progressNotAllowed(.finalStateNeedsBothSignatures)`).
    /// The copy is signed through the journal like any signature of ours.
    package func progressToFinalCopy(_ id: ChannelID) async throws(NodeError) {
        let runner = try runner(id)
        let chain: ChannelOnChain?
        do { chain = try await settlement.channel(id) } catch { throw .chain(error) }
        guard let registered = chain?.registeredState else {
            throw .invalidParameters("nothing is registered on chain for channel \(id.shortID)")
        }
        var copy = registered
        copy.version = registered.version + 1
        copy.isFinal = true
        let signature: StateSignature
        do { (_, signature) = try await runner.signForChain(copy, from: registered) } catch {
            throw .invalidParameters("\(error)")
        }
        do { _ = try await settlement.progress(id, to: copy, moverSignature: signature) } catch { throw .chain(error) }
    }

    /// Drill tool: sends a deliberately malformed update on channel `id` (see `Tampering`).
    /// Returns the version it carried. The peer must reject it; our own state is untouched,
    /// and any version the bad state used is burned first (never signed twice).
    @discardableResult
    package func sendTampered(_ id: ChannelID, _ kind: Tampering) async throws(NodeError) -> UInt64 {
        do { return try await runner(id).tamper(kind) } catch let error as NodeError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
    }
    /// Drill tool: registers `state` as a cheater would, and switches off our own
    /// watcher's refutation on this channel for good, so that the *other* side's watcher is
    /// the one tested. Never use it on a channel that holds money you care about.
    package func registerAsCheater(_ state: SignedState) async throws(NodeError) {
        let id = state.state.channelID
        _ = try runner(id)
        await watcher.stopRefuting(id)
        do { _ = try await settlement.register(state) } catch { throw .chain(error) }
    }
}
