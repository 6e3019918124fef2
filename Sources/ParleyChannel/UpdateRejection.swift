import ParleyWire

/// Why a proposed state, or a local request to build one, is refused.
///
/// Each case names the rule that failed, so a caller can switch on it and a
/// person can read it. Refusing never changes the committed state.
public enum UpdateRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongChannel(expected: ChannelID, got: ChannelID)
    /// The version is not the next unused one (stale, replayed or skipping ahead).
    case versionMismatch(expected: UInt64, got: UInt64)
    case balanceNotConserved(total: Amount, proposed: Amount)
    /// The balances add up to more than an `Amount` (128 bits) can hold.
    case balanceOverflow
    case badSignature(signer: ParticipantIndex)
    case missingSignature(signer: ParticipantIndex)
    case updateAfterFinal
    case appRuleViolated(String)
    case appDataTooLarge(bytes: Int, limit: Int)
    /// A local payment larger than the payer's balance.
    case insufficientFunds(available: Amount, requested: Amount)
    /// A local update computed from a state that is no longer the latest.
    case staleBase(base: UInt64, committed: UInt64)
    /// The channel cannot take updates right now (opening, reconnecting).
    case notReady(String)
    /// A message that does not fit the current step of the protocol.
    case unexpectedMessage(String)
    /// Every version number has been used; the channel can only be settled.
    case versionsExhausted
    /// We signed a final state at `version` that did not commit. The peer may hold it
    /// countersigned and register it at any time (it concludes at once), so the channel
    /// takes no more updates: it only closes, cooperatively with that final state's
    /// balances, or on chain.
    case finalStateOutstanding(version: UInt64)
    /// We already signed a different state at this version; signing another would equivocate.
    case versionAlreadySigned(UInt64)
    /// A game where it is our move: a final state now would be signed at the version of our
    /// next move. A peer that ignored it and registered the current state would leave us
    /// unable to move on chain without signing two states at one version, so we would
    /// forfeit. Move first, or dispute (found by the simulator, issue 16).
    case closeOnOwnTurn(version: UInt64)
    /// A game whose version after our latest state is used up (a proposal there was refused):
    /// a move or close of ours at a later version could take the version of one of our own
    /// moves if the game continues on chain, which we could then not make without signing
    /// two states at one version. The game continues on chain: dispute (found by the
    /// simulator, issue 16).
    case moveMustGoOnChain(version: UInt64)

    public var description: String {
        switch self {
        case let .wrongChannel(expected, got):
            return "state belongs to channel \(got.shortID), not \(expected.shortID)"
        case let .versionMismatch(expected, got):
            return "version \(got) is not the next version \(expected)"
        case let .balanceNotConserved(total, proposed):
            return "balances add up to \(proposed), but the channel holds \(total)"
        case .balanceOverflow:
            return "balances overflow 128 bits"
        case let .badSignature(signer):
            return "signature of \(signer) does not verify"
        case let .missingSignature(signer):
            return "signature of \(signer) is missing"
        case .updateAfterFinal:
            return "the channel has a final state; no update may follow it"
        case let .appRuleViolated(reason):
            return "app rule violated: \(reason)"
        case let .appDataTooLarge(bytes, limit):
            return "app data is \(bytes) bytes, more than the limit of \(limit)"
        case let .insufficientFunds(available, requested):
            return "cannot pay \(requested): only \(available) available"
        case let .staleBase(base, committed):
            return "update was computed from version \(base), but version \(committed) is now the latest"
        case let .notReady(why):
            return "channel not ready: \(why)"
        case let .unexpectedMessage(what):
            return "unexpected message: \(what)"
        case .versionsExhausted:
            return "every version number has been used; settle the channel"
        case let .versionAlreadySigned(version):
            return "we already signed a different state at version \(version); signing another would equivocate"
        case let .moveMustGoOnChain(version):
            return "version \(version) is used up, and an update of ours at a later version could take the version "
                + "of one of our own moves on chain; the game continues on chain: dispute"
        case let .closeOnOwnTurn(version):
            return "it is our move at version \(version): a close now would sign the version of our next move, "
                + "which a peer could use to make us forfeit on chain; move first, or dispute"
        case let .finalStateOutstanding(version):
            return "we signed a final state at version \(version) that did not commit and the peer may hold it; "
                + "the channel only closes now (cooperatively with that state's balances, or on chain)"
        }
    }
}

/// A peer's answer to our proposal, as it travels on the wire.
public enum RejectReason: Hashable, Sendable, CustomStringConvertible {
    /// Both peers proposed at once; both proposals are burned and the first seat retries first.
    case concurrentProposal
    /// The peer's update handler said no.
    case declined(String)
    /// The proposal broke a protocol rule (the text says which).
    case invalid(String)
    case channelFinal
    /// The peer is opening or re-synchronising the channel.
    case notReady

    public var description: String {
        switch self {
        case .concurrentProposal: return "both sides proposed at once"
        case let .declined(why): return "declined: \(why)"
        case let .invalid(why): return "invalid: \(why)"
        case .channelFinal: return "the channel is final"
        case .notReady: return "the peer is not ready"
        }
    }
}

/// How a local update request ended, when it did not commit.
public enum UpdateFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// We refused to build or sign it.
    case refused(UpdateRejection)
    /// The peer answered with a rejection.
    case rejected(RejectReason)

    public var description: String {
        switch self {
        case let .refused(why): return "refused locally: \(why)"
        case let .rejected(why): return "rejected by peer: \(why)"
        }
    }
}

/// Why a channel cannot be opened as proposed.
public enum OpenRejection: Error, Equatable, Sendable, CustomStringConvertible {
    /// Our key is not in the seat the role requires (the proposer sits first).
    case notAParticipant(role: String)
    case wrongApp(channel: AppID, rules: AppID)
    /// The opening state is not a valid version 0 of this channel.
    case invalidInitialState(UpdateRejection)

    public var description: String {
        switch self {
        case let .notAParticipant(role): return "our key is not the channel's \(role)"
        case let .wrongApp(channel, rules): return "channel uses app \(channel), but the rules given are for \(rules)"
        case let .invalidInitialState(why): return "invalid opening state: \(why)"
        }
    }
}
