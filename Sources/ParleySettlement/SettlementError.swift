import ParleyChannel
import ParleyCrypto
import ParleyWire

/// Why the chain refused a transaction, or why an adapter could not reach it.
///
/// Every refusal leaves the chain exactly as it was (`Adjudicator.apply` is
/// atomic). Each case names the rule that failed; Docs/Settlement.md has the
/// full table of rules and the error each one throws.
public enum SettlementError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No deposit ever named this channel.
    case unknownChannel(ChannelID)
    /// The caller's key is not the seat (or not any seat) the transaction needs.
    case notAParticipant(PublicKey, ChannelID)
    case badSignature(ParticipantIndex)
    case missingSignature(ParticipantIndex)
    /// A state names a different channel than the transaction.
    case wrongChannel(expected: ChannelID, got: ChannelID)
    /// A registration whose version is not higher than the registered one.
    case staleVersion(registered: UInt64, got: UInt64)
    /// A progressed state must be exactly the registered version + 1.
    case notNextVersion(expected: UInt64, got: UInt64)
    /// The challenge window is over (`now >= deadline`): no more registrations.
    case windowClosed(deadline: ChainTime, now: ChainTime)
    /// The challenge window is still open (`now < deadline`): too early to conclude.
    case windowStillOpen(deadline: ChainTime, now: ChainTime)
    /// Conclude or progress on a channel with no registered state.
    case nothingRegistered
    /// The channel's payout is already fixed.
    case alreadyConcluded
    /// Withdraw before the channel concluded.
    case notConcluded
    case alreadyWithdrawn(ParticipantIndex)
    /// The seat's concluded payout is zero.
    case nothingToWithdraw(ParticipantIndex)
    /// Register on a channel whose deposits do not yet match its opening allocation.
    case underfunded(deposited: Amount, required: Amount)
    /// A deposit that would take the seat above its opening amount.
    case overDeposit(participant: ParticipantIndex, deposited: Amount, amount: Amount, required: Amount)
    /// A deposit naming a different opening allocation than the channel's first deposit.
    case openingMismatch(channel: Allocation, got: Allocation)
    /// A deposit or reclaim on a channel that is already fully funded.
    case alreadyFunded
    /// A deposit on a channel whose deposits were reclaimed.
    case depositsClosed
    /// Reclaim by a seat that has nothing deposited.
    case nothingToReclaim(ParticipantIndex)
    /// Mints and deposits move a positive amount.
    case zeroAmount
    case insufficientBalance(account: PublicKey, has: Amount, needs: Amount)
    /// Progress by the participant whose turn it is not.
    case notYourTurn(expected: ParticipantIndex, got: ParticipantIndex)
    case progressNotAllowed(ProgressRefusal)
    /// The channel's app refused the move.
    case invalidMove(String)
    /// The chain has no rules registered for the channel's app.
    case unknownApp(AppID)
    /// A state's balances do not add up to what the channel holds.
    case balanceNotConserved(funded: Amount, proposed: Amount)
    /// An allocation, or the total money supply, would not fit in an `Amount` (128 bits).
    case balanceOverflow
    /// The adapter could not reach the chain, or the chain's answer was unreadable.
    case transport(String)
    /// A deposit for a channel bound to another chain or adjudicator (`ChannelParams.domain`).
    case wrongDomain(expected: SettlementDomain, got: SettlementDomain)
    /// The chain's operator does not allow this caller to do this (a devchain's faucet or
    /// clock without `--allow-faucet` / `--allow-time-travel`). Nothing changed.
    case notPermitted(String)

    public var description: String {
        switch self {
        case let .unknownChannel(id):
            return "channel \(id.shortID) is not on chain; deposit to create it"
        case let .notAParticipant(key, id):
            return "key \(key.shortID) does not hold the required seat of channel \(id.shortID)"
        case let .badSignature(seat):
            return "signature of \(seat) does not verify"
        case let .missingSignature(seat):
            return "signature of \(seat) is missing; the chain needs both"
        case let .wrongChannel(expected, got):
            return "state belongs to channel \(got.shortID), not \(expected.shortID)"
        case let .staleVersion(registered, got):
            return "version \(got) is not higher than the registered version \(registered)"
        case let .notNextVersion(expected, got):
            return "progressed version must be \(expected), got \(got)"
        case let .windowClosed(deadline, now):
            return "challenge window closed at \(deadline) (now \(now)); conclude instead"
        case let .windowStillOpen(deadline, now):
            return "challenge window is open until \(deadline) (now \(now)); wait for it to close"
        case .nothingRegistered:
            return "no state is registered; register one first"
        case .alreadyConcluded:
            return "the channel is already concluded; withdraw instead"
        case .notConcluded:
            return "the channel is not concluded yet; conclude it first"
        case let .alreadyWithdrawn(seat):
            return "\(seat) already withdrew its payout"
        case let .nothingToWithdraw(seat):
            return "\(seat) has a payout of 0"
        case let .underfunded(deposited, required):
            return "channel holds \(deposited) of the \(required) its opening allocation needs"
        case let .overDeposit(seat, deposited, amount, required):
            return "\(seat) has deposited \(deposited) of \(required); another \(amount) would exceed it"
        case let .openingMismatch(channel, got):
            return "the channel opens with \(channel), this deposit names \(got)"
        case .alreadyFunded:
            return "the channel is already fully funded"
        case .depositsClosed:
            return "deposits to this channel were reclaimed; it takes no more"
        case let .nothingToReclaim(seat):
            return "\(seat) has nothing deposited to reclaim"
        case .zeroAmount:
            return "the amount must be positive"
        case let .insufficientBalance(account, has, needs):
            return "account \(account.shortID) holds \(has), needs \(needs)"
        case let .notYourTurn(expected, got):
            return "it is \(expected)'s turn, not \(got)'s"
        case let .progressNotAllowed(why):
            return "progress not allowed: \(why)"
        case let .invalidMove(reason):
            return "invalid move: \(reason)"
        case let .unknownApp(app):
            return "the chain has no rules for app \(app)"
        case let .balanceNotConserved(funded, proposed):
            return "balances add up to \(proposed), but the channel holds \(funded)"
        case .balanceOverflow:
            return "amounts overflow 128 bits"
        case let .transport(why):
            return "cannot reach the chain: \(why)"
        case let .wrongDomain(expected, got):
            return "the channel is bound to \(got), but this chain is \(expected)"
        case let .notPermitted(why):
            return "the chain does not permit this: \(why)"
        }
    }
}

/// Why `progress` is refused even though the channel has a registered state.
public enum ProgressRefusal: Equatable, Sendable, CustomStringConvertible {
    /// The app's `mover(in:)` is `nil`: it has no turns (payments never progress).
    case appHasNoTurns(AppID)
    /// Progress starts only after the window closes (`now >= deadline`).
    case windowStillOpen(deadline: ChainTime, now: ChainTime)
    /// A final state ends the game; nothing may follow it.
    case registeredStateIsFinal
    /// The registered version is `UInt64.max`; there is no next one.
    case versionsExhausted
    /// A progressed state must not be final: a final state needs both signatures and
    /// enters the chain only through `register` (else the player to move could escape a
    /// forfeit by "moving" to a final copy of the position).
    case finalStateNeedsBothSignatures

    public var description: String {
        switch self {
        case let .appHasNoTurns(app): return "app \(app) has no turns"
        case let .windowStillOpen(deadline, now):
            return "the challenge window is open until \(deadline) (now \(now))"
        case .registeredStateIsFinal: return "the registered state is final"
        case .versionsExhausted: return "every version number has been used"
        case .finalStateNeedsBothSignatures:
            return "a final state needs both signatures: register it instead of progressing to it"
        }
    }
}
