import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire

extension EthereumAdapter {
    /// The `SettlementError` for the adjudicator's revert `reason` (the name of the case,
    /// `Contracts/Adjudicator.vy`), with the fields the embedded chain gives, read from the
    /// chain now. Docs/Ethereum.md, "Reverts", has the table.
    func refusal(_ reason: String?, _ call: Call) async -> SettlementError {
        guard let reason else { return .transport("the adjudicator refused the transaction without a reason") }
        if reason.hasPrefix("invalidMove: ") { return .invalidMove(String(reason.dropFirst("invalidMove: ".count))) }
        let id = call.channel
        let onChain: ChannelOnChain? = if let id { try? await chain.channel(id) } else { nil }
        let now = (try? await self.now()) ?? .zero
        let seat: ParticipantIndex? = {
            switch call {
            case let .deposit(params, _, _, _), let .reclaim(params), let .register(params, _), let .progress(params, _, _),
                let .withdraw(params, _):
                params.signers.firstIndex(of: .ethereum(address)).flatMap { ParticipantIndex(rawValue: UInt8($0)) }
            default: nil
            }
        }()
        switch (reason, call) {
        case ("unknownChannel", _): return .unknownChannel(id ?? ChannelID(digest: Keccak256.hash([])))
        case ("notAParticipant", _): return .notAParticipant(identity, id ?? ChannelID(digest: Keccak256.hash([])))
        case ("zeroAmount", _): return .zeroAmount
        case ("balanceOverflow", _): return .balanceOverflow
        case let ("openingMismatch", .deposit(_, opening, _, _)):
            return .openingMismatch(channel: onChain?.opening ?? opening, got: opening)
        case ("alreadyFunded", _): return .alreadyFunded
        case ("depositsClosed", _): return .depositsClosed
        case let ("overDeposit", .deposit(_, opening, participant, amount)):
            return .overDeposit(
                participant: participant, deposited: onChain?.deposits[participant] ?? .zero, amount: amount,
                required: opening[participant])
        case let ("insufficientBalance", .deposit(_, _, _, amount)):
            return .insufficientBalance(account: identity, has: (try? await chain.balance(of: address)) ?? .zero, needs: amount)
        case ("nothingToReclaim", _): return .nothingToReclaim(seat ?? .first)
        case let ("wrongChannel", .register(params, state)): return .wrongChannel(expected: params.id, got: state.channelID)
        case let ("wrongChannel", .progress(params, _, state)): return .wrongChannel(expected: params.id, got: state.channelID)
        case ("alreadyConcluded", _): return .alreadyConcluded
        case ("underfunded", _):
            let deposits = onChain?.deposits ?? Allocation(.zero, .zero)
            return .underfunded(deposited: deposits[.first] &+ deposits[.second], required: onChain?.fundedTotal ?? .zero)
        case ("badSignature0", _): return .badSignature(.first)
        case ("badSignature1", _): return .badSignature(.second)
        case ("badSignature", _): return .badSignature(seat ?? .first)
        case let ("balanceNotConserved", .register(_, state)), let ("balanceNotConserved", .progress(_, _, state)):
            return .balanceNotConserved(funded: onChain?.fundedTotal ?? .zero, proposed: state.allocation[.first] &+ state.allocation[.second])
        case let ("staleVersion", .register(_, state)):
            return .staleVersion(registered: onChain?.registeredVersion ?? 0, got: state.version)
        case ("windowClosed", _): return .windowClosed(deadline: onChain?.deadline ?? now, now: now)
        case ("windowStillOpen", _): return .windowStillOpen(deadline: onChain?.deadline ?? now, now: now)
        case ("nothingRegistered", _): return .nothingRegistered
        case let ("appHasNoTurns", .progress(params, _, _)): return .progressNotAllowed(.appHasNoTurns(params.appID))
        case let ("unknownApp", .progress(params, _, _)): return .unknownApp(params.appID)
        case ("finalStateNeedsBothSignatures", _): return .progressNotAllowed(.finalStateNeedsBothSignatures)
        case ("versionsExhausted", _): return .progressNotAllowed(.versionsExhausted)
        case ("notYourTurn", _):
            let caller = seat ?? .first
            return .notYourTurn(expected: caller.peer, got: caller)
        case let ("notNextVersion", .progress(_, current, next)):
            return .notNextVersion(expected: current.version &+ 1, got: next.version)
        case ("notRegisteredState", _):
            return .transport("the registered state changed while this progress was sent: read the chain and try again")
        case ("notConcluded", _): return .notConcluded
        case let ("alreadyWithdrawn", .withdraw(_, participant)): return .alreadyWithdrawn(participant)
        case let ("nothingToWithdraw", .withdraw(_, participant)): return .nothingToWithdraw(participant)
        case ("wrongValue", _): return .transport("the adjudicator refused the ether sent with the call")
        case ("transferFailed", _): return .transport("the token refused to pay out")
        default: return .transport("the adjudicator refused the transaction: \(reason)")
        }
    }
}
