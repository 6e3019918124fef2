import ParleyCrypto
import ParleyWire

/// Identifies a local update request so its outcome can be reported back.
public typealias UpdateID = UInt64

/// What the app wants the next state to be.
public enum UpdateIntent: Hashable, Sendable {
    /// Move `amount` from my balance to the peer's; rebased on whatever state is latest when it goes out.
    case pay(amount: Amount)
    /// An arbitrary next state computed from version `base`; refused with `staleBase` if that is no longer the latest.
    case replace(base: UInt64, allocation: Allocation, appData: [UInt8], isFinal: Bool)
    /// Cooperative close: the latest allocation and app data, marked final.
    case finalize
}

/// The update handler's answer to an incoming proposal.
public enum Decision: Hashable, Sendable {
    case accept
    case reject(String)
}

/// Everything that can happen to a channel, as seen by the engine.
public enum EngineInput: Sendable {
    /// The app asks for an update. It queues; proposals go out one at a time.
    case update(UpdateID, UpdateIntent)
    /// A message from the peer, already decoded and routed to this channel.
    case received(ChannelMessage)
    /// The update handler's answer to the `.decide` effect for `version`.
    case decided(version: UInt64, Decision)
    /// Our proposal `version` got no answer in time; the node should reconnect.
    case proposalTimedOut(version: UInt64)
    /// The backoff after losing a simultaneous-proposal tie-break has passed.
    case retryDue
    /// The session carrying this channel closed.
    case disconnected
    /// A new session to the peer is up.
    case connected
    /// The peer did not come back or resynchronise in time: fail every queued, not yet
    /// proposed update (a proposal already signed and sent stays; reestablish settles it).
    case dropQueued
}

/// The peer's proposal, handed to the update handler.
public struct IncomingProposal: Hashable, Sendable {
    /// Our latest fully-signed state.
    public let current: ChannelState
    public let proposed: ChannelState
    public let proposer: ParticipantIndex
    /// The proposer's signature on `proposed` (already verified).
    public let signature: StateSignature
}

/// What the node must persist. Contract: a `.journal` effect is durable
/// before any effect after it in the same list is performed.
public enum JournalRecord: Hashable, Sendable {
    /// A new channel and the opening allocation both sides fund on chain.
    case opened(ChannelParams, funding: Allocation)
    /// I signed this state (my signature only). Written before the signature leaves.
    case signed(SignedState)
    /// Both signatures. Written before it is acknowledged, reported or used on chain.
    case committed(SignedState)
    /// My proposal `version` will never commit; the version stays burned.
    case aborted(version: UInt64)
}

/// Things the app hears about.
public enum ChannelEvent: Equatable, Sendable {
    case opened(SignedState)
    /// A new fully-signed state. `updates` names our requests it settles, oldest first:
    /// empty when the peer proposed it, several when payments were coalesced into it.
    case committed(SignedState, updates: [UpdateID])
    case updateFailed(UpdateID, UpdateFailure)
    /// We refused the peer's proposal for this reason.
    case refusedIncoming(UpdateRejection)
    /// A message arrived that does not fit the protocol; nothing changed.
    case ignoredMessage(UpdateRejection)
    case proposalTimedOut(version: UInt64)
    /// Both sides agree on the latest state again after a reconnect.
    case reestablished(committedVersion: UInt64)
}

/// Why the engine asks the node to drop the session.
public enum DisconnectReason: Hashable, Sendable {
    case proposalTimeout(version: UInt64)
}

/// A side effect for the node to perform, in list order.
public enum Effect: Equatable, Sendable {
    case journal(JournalRecord)
    case send(ChannelMessage)
    /// Ask the update handler; answer with `.decided`.
    case decide(IncomingProposal)
    case notify(ChannelEvent)
    /// We lost a simultaneous-proposal tie-break: deliver `.retryDue` after a short randomized delay.
    case scheduleRetry
    case disconnect(DisconnectReason)
}
