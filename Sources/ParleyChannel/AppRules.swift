/// An illegal move or malformed app data, in the app's own words.
public struct AppRuleViolation: Error, Equatable, Sendable {
    public let reason: String

    public init(_ reason: String) {
        self.reason = reason
    }
}

/// The rules a channel's app data must follow, shared by the engine and the chain.
///
/// The engine calls `validateTransition` for every state it signs or
/// countersigns, after checking version, signatures and conservation.
public protocol AppRules: Sendable {
    var appID: AppID { get }
    /// Throws when `next` is not a legal successor of `current` made by `mover`.
    func validateTransition(
        from current: ChannelState, to next: ChannelState, mover: ParticipantIndex
    ) throws(AppRuleViolation)
    /// Throws when `state` is not a legal opening state (version 0) for this app.
    func validateInitial(_ state: ChannelState) throws(AppRuleViolation)
    /// Whose turn it is in `state`: the only participant the chain lets `progress` it.
    /// `nil` means the app has no turns (or the game is over), so the chain allows no progress.
    func mover(in state: ChannelState) -> ParticipantIndex?
    /// What the chain pays out if the channel concludes on `state` without a final state:
    /// the game stopped there. For a game, a player who stops moving forfeits, so an
    /// unfinished state typically pays everything to the player who is *not* to move.
    /// Must keep the state's total. Cooperative (final) states always pay their allocation.
    func outcome(of state: ChannelState) -> Allocation
}

extension AppRules {
    /// Apps without turns (payments) never progress on chain.
    public func mover(in state: ChannelState) -> ParticipantIndex? { nil }

    /// By default a state pays what its allocation says.
    public func outcome(of state: ChannelState) -> Allocation { state.allocation }
}

/// Plain payments: no app data, any reallocation that conserves the total.
///
/// Whether a particular reallocation is welcome (a payment *to* me) is the
/// update handler's call, not a rule of the app.
public struct PaymentApp: AppRules {
    public init() {}

    public var appID: AppID { .payment }

    public func validateTransition(
        from current: ChannelState, to next: ChannelState, mover: ParticipantIndex
    ) throws(AppRuleViolation) {
        guard next.appData.isEmpty else {
            throw AppRuleViolation("payment channels carry no app data")
        }
    }

    public func validateInitial(_ state: ChannelState) throws(AppRuleViolation) {
        guard state.appData.isEmpty else {
            throw AppRuleViolation("payment channels carry no app data")
        }
    }
}
