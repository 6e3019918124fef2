import ParleyChannel
import ParleyCrypto
import ParleyWire

/// What the chain knows about one channel: a snapshot, safe to keep and compare.
public struct ChannelOnChain: Sendable, Equatable {
    /// The parameters the first deposit named; the channel id is derived from them.
    public let params: ChannelParams
    /// The allocation the first deposit named; every deposit must name the same one.
    public let opening: Allocation
    /// The sum of `opening`: what the channel holds once funded, and what every
    /// registered state's balances must add up to.
    public let fundedTotal: Amount
    /// What each seat has deposited so far (and not reclaimed).
    public internal(set) var deposits: Allocation
    /// Every seat's deposit equals its opening amount. Never becomes false again.
    public internal(set) var isFunded: Bool
    /// A seat reclaimed its deposit before funding: the channel takes no more deposits.
    public internal(set) var depositsClosed: Bool
    /// The state the chain currently honours: registered with both signatures, or
    /// progressed with the mover's signature alone.
    public internal(set) var registeredState: ChannelState?
    /// The registered state came from `progress` (signed by its mover alone); a fully-signed
    /// state of the same version may still replace it.
    public internal(set) var isProgressed: Bool
    /// The end of the current challenge window: the window is open while `now < deadline`.
    public internal(set) var deadline: ChainTime?
    /// Where the channel is in its on-chain life (see `ChainPhase`).
    public internal(set) var phase: ChainPhase
    /// The payout, fixed by `conclude` (or by registering a final state).
    public internal(set) var concludedAllocation: Allocation?
    /// Seats that have withdrawn their payout.
    public internal(set) var withdrawn: Set<ParticipantIndex>

    init(params: ChannelParams, opening: Allocation, fundedTotal: Amount) {
        self.params = params
        self.opening = opening
        self.fundedTotal = fundedTotal
        deposits = Allocation(0, 0)
        isFunded = false
        depositsClosed = false
        registeredState = nil
        isProgressed = false
        deadline = nil
        phase = .open
        concludedAllocation = nil
        withdrawn = []
    }

    /// A snapshot read from a chain Parley does not run itself (an EVM adjudicator): every
    /// field as that chain reports it. `nil` when the opening's total does not fit an `Amount`.
    public init?(
        params: ChannelParams, opening: Allocation, deposits: Allocation, isFunded: Bool, depositsClosed: Bool,
        registeredState: ChannelState?, isProgressed: Bool, deadline: ChainTime?, phase: ChainPhase,
        concludedAllocation: Allocation?, withdrawn: Set<ParticipantIndex>
    ) {
        guard let total = opening.total else { return nil }
        self.init(params: params, opening: opening, fundedTotal: total)
        self.deposits = deposits
        self.isFunded = isFunded
        self.depositsClosed = depositsClosed
        self.registeredState = registeredState
        self.isProgressed = isProgressed
        self.deadline = deadline
        self.phase = phase
        self.concludedAllocation = concludedAllocation
        self.withdrawn = withdrawn
    }

    /// The channel's id, `params.id`.
    public var id: ChannelID { params.id }
    /// The version of `registeredState`, or `nil` before the first registration.
    public var registeredVersion: UInt64? { registeredState?.version }
    /// The payout is fixed (phase `concluded` or `withdrawn`).
    public var isConcluded: Bool { concludedAllocation != nil }

    /// Whether a challenge window is running at `now`: `now < deadline`, so the
    /// window's last second is `deadline - 1` and at `deadline` it is closed.
    public func isWindowOpen(at now: ChainTime) -> Bool {
        deadline.map { now < $0 } ?? false
    }

    /// Money the channel holds: its deposits until it concludes, then the payouts not yet withdrawn.
    public var holdings: Amount {
        guard let payout = concludedAllocation else { return deposits[.first] &+ deposits[.second] }
        return ParticipantIndex.allCases.filter { !withdrawn.contains($0) }.reduce(0) { $0 &+ payout[$1] }
    }

    /// The caller's seat, or `notAParticipant`.
    func seat(of caller: PublicKey) throws(SettlementError) -> ParticipantIndex {
        guard let seat = params.index(of: caller) else { throw .notAParticipant(caller, id) }
        return seat
    }
}

/// Whether a channel may take updates, judged from the chain's snapshot against what both
/// journals agreed at version 0 (Docs/Protocol.md invariant 8).
public enum ChannelUsability: Equatable, Sendable, CustomStringConvertible {
    /// Funded exactly as agreed, not concluded, no dispute open.
    case usable
    /// The deposits do not (yet) match the opening allocation, or no deposit named the channel.
    case notFunded
    /// The chain's record differs from what we agreed (the first depositor named other
    /// terms): the channel can never be used, whatever its "funded" flag says.
    case mismatch(String)
    /// A state is registered (a dispute is open) or the payout is fixed.
    case settling

    public var description: String {
        switch self {
        case .usable: "funded as agreed"
        case .notFunded: "not funded on chain yet"
        case let .mismatch(why): "the chain's record of the channel differs from what we agreed: \(why)"
        case .settling: "the channel is being settled on chain"
        }
    }
}

extension ChannelOnChain {
    /// Judges this snapshot against the parameters and opening allocation both journals
    /// hold for version 0. Only `.usable` lets a node count the channel as funded: the
    /// chain's `isFunded` alone only says the deposits match *whatever the first deposit
    /// named*, which an attacker chooses.
    public func usability(params expected: ChannelParams, opening agreed: Allocation) -> ChannelUsability {
        guard params == expected else { return .mismatch("the chain holds other channel parameters") }
        guard opening == agreed else { return .mismatch("the chain's opening allocation is \(opening), we agreed \(agreed)") }
        guard registeredState == nil, !isConcluded else { return .settling }
        guard isFunded, deposits == agreed else { return .notFunded }
        return .usable
    }
}

extension Optional where Wrapped == ChannelOnChain {
    /// `.notFunded` when no deposit ever named the channel.
    public func usability(params: ChannelParams, opening: Allocation) -> ChannelUsability {
        self?.usability(params: params, opening: opening) ?? .notFunded
    }
}
