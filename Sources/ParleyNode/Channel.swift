import ParleyChannel
import ParleySettlement
import ParleyWire

/// A handle on one channel of a ``Node``. Cheap to copy; every call goes to the node.
///
/// Updates on one channel are proposed one at a time, in the order they were asked for;
/// each call returns once the new state is fully signed and journaled on our side.
public struct Channel: Sendable, Hashable {
    public let id: ChannelID
    let node: Node

    init(id: ChannelID, node: Node) {
        self.id = id
        self.node = node
    }

    public static func == (lhs: Channel, rhs: Channel) -> Bool { lhs.id == rhs.id && lhs.node === rhs.node }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    /// The channel as the node sees it now.
    public var status: ChannelStatus {
        get throws(NodeError) { try node.runner(id).status }
    }

    /// Pays `amount` to the peer. Returns the fully-signed state that carries it.
    ///
    /// A failed payment is *not committed*; it did not necessarily not happen: our
    /// signature went out with the proposal and the peer may keep it. Everything we commit
    /// later replaces it on chain, so this matters only for final states (see ``close()``).
    ///
    /// - Throws: ``NodeError``: `.updateFailed` when we lack the funds, the peer declines,
    ///   or a close we signed did not commit (`.refused(.finalStateOutstanding)`: the
    ///   channel only closes now); `.peerUnresponsive` when the peer does not answer, or
    ///   does not resynchronise, within the proposal timeout (the watcher then exits on
    ///   chain if the policy says so); `.channelClosing`, `.notFunded`.
    @discardableResult
    public func pay(_ amount: Amount) async throws(NodeError) -> SignedState {
        guard amount > 0 else { throw .invalidParameters("a payment must be at least 1 unit, got 0") }
        return try await request(.intent(.pay(amount: amount)))
    }

    /// Proposes an arbitrary next state: `change` receives a copy of the latest state and
    /// edits allocation, app data or the final flag (the version is set by the engine).
    /// The app's rules and conservation are checked before anything is signed.
    ///
    /// Build `change` from the state it is given: when another update commits first, the
    /// request fails with `staleBase` and should be retried.
    @discardableResult
    public func update(_ change: @escaping @Sendable (inout ChannelState) throws -> Void) async throws -> SignedState {
        try await node.runner(id).request(.change(change))
    }

    /// Closes cooperatively: proposes a final state with the current balances; once it is
    /// countersigned the watcher registers it (which concludes at once) and withdraws our
    /// share. Returns what we were paid on chain.
    ///
    /// If the peer declines (`.updateFailed(.rejected(.declined))`), the final state did
    /// not commit, but the peer may hold it countersigned and register it at any time, and
    /// it concludes at once. So from then on the channel takes no update but this close:
    /// call `close()` again (the same balances at a fresh version) or ``dispute()``. You
    /// receive exactly what the final state says either way.
    @discardableResult
    public func close() async throws(NodeError) -> Amount {
        let final = try await request(.intent(.finalize))
        try await waitUntilClosed()
        return try final.state.allocation[status.me]
    }

    /// Leaves through the chain without the peer: registers our newest fully-signed state
    /// now; the watcher concludes once the challenge window has passed and withdraws.
    /// Returns at once — follow ``Node/events`` or call ``waitUntilClosed()``.
    public func dispute() async throws(NodeError) {
        try await node.dispute(id)
    }

    /// Returns once nothing of ours is left in the channel (payout withdrawn).
    public func waitUntilClosed() async throws(NodeError) {
        try await node.waitUntilClosed(id)
    }

    private func request(_ request: ChannelRunner.Request) async throws(NodeError) -> SignedState {
        let runner = try node.runner(id)
        do { return try await runner.request(request) } catch let error as NodeError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
    }
}
