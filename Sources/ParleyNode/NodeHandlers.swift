import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire

/// A peer's proposal, as the update handler sees it.
public struct IncomingUpdate: Sendable {
    public let channel: ChannelID
    /// Our seat in the channel.
    public let me: ParticipantIndex
    /// The latest fully-signed state.
    public let current: ChannelState
    /// What the peer proposes instead.
    public let proposed: ChannelState

    /// The peer's balance moves to us by this much (0 when it takes from us or keeps balances).
    public var amountToMe: Amount {
        let before = current.allocation[me]
        let after = proposed.allocation[me]
        return after > before ? after - before : 0
    }

    /// Whether our balance would shrink.
    public var takesFromMe: Bool { proposed.allocation[me] < current.allocation[me] }
}

/// Decides on the peer's proposals. Runs on the channel's own task; take as long as you
/// need (the peer waits up to its proposal timeout), but answer every call.
public typealias UpdateHandler = @Sendable (IncomingUpdate) async -> Decision

/// Our move in a game that continues on chain: given the registered state (our turn),
/// return the next state (one legal move; the version is set by the node), or nil to let
/// the window run out (we forfeit).
public typealias ChainMoveHandler = @Sendable (ChannelID, ChannelState) async -> ChannelState?

/// An update handler kept at its concrete type (see `Node.Switches`).
final class UpdateHandlerBox: Sendable {
    let handler: UpdateHandler
    init(_ handler: @escaping UpdateHandler) { self.handler = handler }
    func decide(_ update: IncomingUpdate) async -> Decision { await handler(update) }
}

/// A chain-move handler kept at its concrete type (see `Node.Switches`).
final class ChainMoveHandlerBox: Sendable {
    let handler: ChainMoveHandler
    init(_ handler: @escaping ChainMoveHandler) { self.handler = handler }
    func move(_ id: ChannelID, _ state: ChannelState) async -> ChannelState? { await handler(id, state) }
}

/// An open handler kept at its concrete type (see `Node.Switches`).
final class OpenHandlerBox: Sendable {
    let handler: OpenHandler
    init(_ handler: @escaping OpenHandler) { self.handler = handler }
    func decide(_ request: OpenRequest) async -> Bool { await handler(request) }
}

/// A peer asks to open a channel with us. Return `true` to accept (our deposit is made
/// from our chain account), `false` to ignore the proposal.
public typealias OpenHandler = @Sendable (OpenRequest) async -> Bool

/// A peer's channel proposal, as the open handler sees it.
public struct OpenRequest: Sendable {
    public let channel: ChannelID
    public let peer: PublicKey
    /// What the peer deposits.
    public let theirDeposit: Amount
    /// What we would deposit.
    public let myDeposit: Amount
    public let challengeDuration: UInt64
    public let appID: AppID
}

extension Node {
    /// The default update handler: accept any proposal that does not take from us and
    /// keeps the app data as it is — payments to us and a cooperative close. Everything
    /// else is declined with a reason the peer sees.
    public static let acceptPaymentsToMe: UpdateHandler = { update in
        if update.takesFromMe { return .reject("that takes from my balance") }
        if update.proposed.appData != update.current.appData { return .reject("app data changes need an app handler") }
        return .accept
    }

    /// The default open handler: accept payment channels (their deposit and ours come
    /// from the proposal; our share is deposited from our chain account).
    public static let acceptPaymentChannels: OpenHandler = { request in request.appID == .payment }
}
