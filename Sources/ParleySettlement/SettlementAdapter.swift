import ParleyChannel
import ParleyCrypto
import ParleyWire

// One small protocol per role (go-perun style), composed into `SettlementAdapter`.
// Every call is one chain transaction signed and paid for by the adapter's
// identity; it returns the events that transaction caused, or throws and
// changes nothing on chain. Rules and errors: Docs/Settlement.md.

/// Reads chain time: the only clock challenge windows are measured by.
public protocol ChainClock: Sendable {
    /// The chain's current time. A transaction submitted now is judged at this time or later.
    func now() async throws(SettlementError) -> ChainTime
}

/// Puts money into channels, and takes it back out of channels that never got funded.
public protocol Funder: Sendable {
    /// Moves `amount` from the identity's account into `participant`'s seat of the channel.
    /// The identity must be that seat's key. The first deposit fixes `opening`;
    /// the channel is funded when every seat's deposit equals its opening amount.
    @discardableResult
    func deposit(
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount
    ) async throws(SettlementError) -> [ChainEvent]

    /// Returns the identity's deposit from a channel that is not funded;
    /// the channel then accepts no more deposits.
    @discardableResult
    func reclaim(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent]
}

/// Puts states on chain during a dispute.
public protocol Registerer: Sendable {
    /// Registers a fully-signed state with a higher version than the registered one, while the
    /// window is open (or opens it). A final state concludes the channel at once.
    @discardableResult
    func register(_ state: SignedState) async throws(SettlementError) -> [ChainEvent]

    /// After the window closed, the identity — whose turn it must be — advances the
    /// registered state by one valid move signed by itself. Opens a fresh window.
    @discardableResult
    func progress(
        _ channel: ChannelID, to state: ChannelState, moverSignature: StateSignature
    ) async throws(SettlementError) -> [ChainEvent]
}

/// Ends disputes and pays out.
public protocol Concluder: Sendable {
    /// Fixes the payout at the registered allocation once `now >= deadline`. Anyone may call it.
    @discardableResult
    func conclude(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent]

    /// Pays `participant`'s concluded amount into that seat's account, once.
    /// The identity must be that seat's key.
    @discardableResult
    func withdraw(_ channel: ChannelID, participant: ParticipantIndex) async throws(SettlementError) -> [ChainEvent]
}

/// Reads chain state. Answers reflect every transaction that returned before the call.
public protocol ChainReader: Sendable {
    /// The channel's on-chain snapshot, or `nil` if no deposit ever named it.
    func channel(_ id: ChannelID) async throws(SettlementError) -> ChannelOnChain?
    /// The account's balance outside any channel.
    func balance(of account: PublicKey) async throws(SettlementError) -> Amount
}

/// Delivers chain events.
public protocol EventSubscriber: Sendable {
    /// Every event with `sequence > after`, in chain order, each exactly once:
    /// first those that already exist, then new ones as they happen.
    ///
    /// A subscriber that remembers the last sequence it handled and subscribes again
    /// with it misses nothing and sees nothing twice. The stream ends with an error
    /// (a `SettlementError`) only if the adapter loses the chain; cancel it to stop.
    func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error>
}

/// Everything a node needs from a chain, acting as `identity`.
public protocol SettlementAdapter: Funder, Registerer, Concluder, ChainReader, EventSubscriber, ChainClock {
    /// Who signs and pays for this adapter's transactions.
    var identity: PublicKey { get }
    /// The chain (and contract) this adapter settles on. Every channel a node opens through
    /// it is bound to this domain (`ChannelParams.domain`); proposals for another are refused.
    /// Never changes for one adapter.
    func domain() async throws(SettlementError) -> SettlementDomain
}

/// Creates money on development chains. Real chains do not offer it.
public protocol DevFaucet: Sendable {
    @discardableResult
    func mint(_ amount: Amount, to account: PublicKey) async throws(SettlementError) -> [ChainEvent]
}
