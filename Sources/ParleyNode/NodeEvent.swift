import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire

/// What a node reports, in order per channel. Read ``Node/events`` to follow them.
public enum NodeEvent: Sendable, Equatable {
    /// The channel exists in both journals (version 0 fully signed).
    case opened(ChannelID, peer: PublicKey)
    /// The chain shows both deposits; updates may flow.
    case funded(ChannelID)
    /// The peer proposed `version`; the update handler is deciding.
    case proposed(ChannelID, version: UInt64)
    /// A new fully-signed state, journaled. `mine` is true when we proposed it.
    case committed(ChannelID, SignedState, mine: Bool)
    /// A proposal was turned down: ours by the peer (`byPeer`), or the peer's (`version`) by us.
    case rejected(ChannelID, version: UInt64?, reason: String, byPeer: Bool)
    /// A session to `peer` is up; its channels re-synchronise.
    case peerConnected(PublicKey)
    /// The session to `peer` ended; the dialing side redials.
    case peerDisconnected(PublicKey, reason: String)
    /// Our proposal got no answer within the proposal timeout.
    case peerSilent(ChannelID)
    /// Someone registered `version` on chain; the window closes at `deadline`.
    case registered(ChannelID, version: UInt64, deadline: ChainTime, by: ParticipantIndex)
    /// `mover` made a move on chain (`progress`); a fresh window closes at `deadline`.
    case progressed(ChannelID, version: UInt64, deadline: ChainTime, mover: ParticipantIndex)
    /// The game goes on on chain and it is our move: `state` is the registered state. The
    /// chain-move handler (``Node/setChainMoveHandler(_:)``) is asked for the move; without
    /// one, we forfeit when the window closes.
    case yourTurnOnChain(ChannelID, state: ChannelState, deadline: ChainTime)
    /// Our watcher answered an older registration with our newer state.
    case refuted(ChannelID, stale: UInt64, with: UInt64)
    /// Our watcher registered our latest state to leave the channel on our own.
    case exitStarted(ChannelID, version: UInt64, reason: ExitReason)
    /// The chain fixed the payout from state `version`.
    case concluded(ChannelID, version: UInt64, allocation: Allocation)
    /// Our payout arrived in our chain account.
    case withdrawn(ChannelID, amount: Amount)
    /// Nothing of ours is left in the channel.
    case closed(ChannelID)
    /// The channel was never funded in time and is given up; any deposit of ours is taken
    /// back. An outcome, not an error: `closed` follows.
    case abandoned(ChannelID)
    /// Something went wrong that the node recovers from by itself (it retries or keeps
    /// serving other channels); `channel` is nil for node-wide trouble.
    case error(ChannelID?, String)
}
