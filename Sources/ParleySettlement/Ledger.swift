import ParleyChannel
import ParleyCrypto
import ParleyWire

/// Everything the chain remembers: accounts, channels and the event log.
///
/// A plain value, so a test can take a snapshot before a transaction and
/// compare it after (a refused transaction must leave it equal).
public struct Ledger: Sendable, Equatable {
    /// Account balances; an account with a zero balance has no entry.
    public internal(set) var accounts: [PublicKey: Amount] = [:]
    /// Every channel a deposit ever named, by id.
    public internal(set) var channels: [ChannelID: ChannelOnChain] = [:]
    /// Every event so far; `events[i].sequence == i + 1`.
    public internal(set) var events: [ChainEvent] = []
    /// All money ever minted. Invariant: accounts plus channel holdings add up to exactly this.
    public internal(set) var totalMinted: Amount = 0

    /// The empty ledger of a fresh chain.
    public init() {}

    /// The account's balance; 0 for an account never seen.
    public func balance(of account: PublicKey) -> Amount {
        accounts[account] ?? 0
    }

    mutating func setBalance(_ amount: Amount, of account: PublicKey) {
        accounts[account] = amount == 0 ? nil : amount
    }

    /// Appends an event with the next sequence number.
    mutating func emit(_ kind: ChainEvent.Kind, channel: ChannelID, at now: ChainTime) -> ChainEvent {
        let event = ChainEvent(sequence: UInt64(events.count) + 1, time: now, channel: channel, kind: kind)
        events.append(event)
        return event
    }
}
