/// Where a channel is in its life, as seen by one participant.
///
/// The phase is derived from the engine's fields (never stored separately, so
/// it cannot disagree with them). `Phase.transitions` lists every change the
/// engine may make; the engine checks each change against it and the tests
/// enumerate it.
public enum Phase: String, Sendable, Hashable, CaseIterable {
    /// We proposed the channel and wait for the peer's signature on version 0.
    case opening
    /// Open, connected, nothing in flight.
    case idle
    /// Our proposal is in flight.
    case proposing
    /// The peer's proposal waits for our update handler's decision.
    case responding
    /// The connection is down; updates queue.
    case offline
    /// Connected again; exchanging latest versions before any new update.
    case syncing
    /// A fully-signed final state exists; only settlement remains.
    case final

    /// What makes the engine change phase.
    public enum Trigger: String, Sendable, Hashable, CaseIterable {
        case localUpdate, remoteProposal, remoteAnswer, decision, timeout, retry
        case disconnect, connect, reestablish, proof, openAccepted
    }

    public struct Transition: Hashable, Sendable, CustomStringConvertible {
        public let from: Phase
        public let to: Phase
        public let trigger: Trigger

        public var description: String { "\(from) -\(trigger)-> \(to)" }
    }

    /// Every phase change the engine is allowed to make. Staying in the same
    /// phase is always allowed and not listed. Nothing leaves `final`.
    public static let transitions: Set<Transition> = {
        let table: [(Phase, Trigger, Phase)] = [
            (.opening, .openAccepted, .idle),
            (.opening, .openAccepted, .proposing),
            (.idle, .localUpdate, .proposing),
            (.idle, .remoteProposal, .responding),
            (.idle, .retry, .proposing),
            (.idle, .disconnect, .offline),
            (.proposing, .remoteAnswer, .idle),
            (.proposing, .remoteAnswer, .final),
            (.proposing, .timeout, .offline),
            (.proposing, .disconnect, .offline),
            (.responding, .decision, .idle),
            (.responding, .decision, .proposing),
            (.responding, .decision, .final),
            (.responding, .disconnect, .offline),
            (.offline, .connect, .syncing),
            (.syncing, .reestablish, .idle),
            // The opener answers a reconnect by resending its open proposal, which stands in for its reestablish.
            (.syncing, .remoteProposal, .idle),
            (.syncing, .remoteProposal, .proposing),
            (.syncing, .reestablish, .proposing),
            (.syncing, .proof, .idle),
            (.syncing, .proof, .proposing),
            (.syncing, .proof, .final),
            (.syncing, .disconnect, .offline),
        ]
        return Set(table.map { Transition(from: $0.0, to: $0.2, trigger: $0.1) })
    }()

    public static func isAllowed(from: Phase, to: Phase, on trigger: Trigger) -> Bool {
        from == to || transitions.contains(Transition(from: from, to: to, trigger: trigger))
    }
}
