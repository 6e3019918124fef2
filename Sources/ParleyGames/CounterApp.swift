import ParleyChannel

/// The turn-taking reference app (app id `test.counter/1`): the smallest app with turns,
/// which the settlement conformance suite runs `progress` with on every chain. Every
/// `parley devchain` knows it (``GameRules/all``), and `parley evm deploy` deploys its
/// contract twin (`Contracts/CounterApp.vy`) next to the adjudicator.
///
/// The app data is one counter byte. Seat 0 moves when the counter is even,
/// seat 1 when it is odd; the only legal move adds one and keeps the
/// balances. It is the smallest app that has turns, so it is what `progress`
/// is tested with on every backend.
public struct CounterApp: AppRules {
    /// `test.counter/1`.
    public static let id = (try? AppID("test.counter/1")) ?? .payment

    public init() {}

    public var appID: AppID { Self.id }

    /// Seat 0 on an even counter, seat 1 on an odd one; `nil` when the app data is not one byte.
    public func mover(in state: ChannelState) -> ParticipantIndex? {
        guard let counter = state.appData.first, state.appData.count == 1 else { return nil }
        return counter % 2 == 0 ? .first : .second
    }

    public func validateTransition(
        from current: ChannelState, to next: ChannelState, mover: ParticipantIndex
    ) throws(AppRuleViolation) {
        guard current.appData.count == 1, next.appData.count == 1 else {
            throw AppRuleViolation("app data must be one counter byte")
        }
        guard next.appData[0] == current.appData[0] &+ 1 else {
            throw AppRuleViolation("the counter must go up by exactly one")
        }
        guard next.allocation == current.allocation else {
            throw AppRuleViolation("a move does not change balances")
        }
    }

    public func validateInitial(_ state: ChannelState) throws(AppRuleViolation) {
        guard state.appData == [0] else { throw AppRuleViolation("the counter starts at 0") }
    }
}
