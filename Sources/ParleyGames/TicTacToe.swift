import ParleyChannel
import ParleyWire

/// Tic-tac-toe for stakes (app id `parley.tictactoe/1`).
///
/// Each seat stakes its opening balance. Seat `.first` plays X and moves
/// first. The move that completes a line pays the whole total to its mover;
/// every other move, including the one that fills the board for a draw, keeps
/// the allocation. A player who stops moving forfeits: concluding on an
/// unfinished state pays everything to the seat that is not to move.
///
/// The app data is ``Board/appDataByteCount`` bytes: the format byte, then the
/// nine cells row by row (0 empty, 1 X, 2 O). Version numbers, signatures and
/// conservation are the engine's business and are not checked here.
public struct TicTacToe: AppRules {
    /// `parley.tictactoe/1`.
    public static let id = (try? AppID("parley.tictactoe/1")) ?? .payment

    /// The app data of the opening state: format 1 and an empty board.
    public static var initialAppData: [UInt8] { Board().appData }

    /// The rules hold no state; every instance behaves the same.
    public init() {}

    /// Always ``id``.
    public var appID: AppID { Self.id }

    /// `.first` after an even number of marks, `.second` after an odd one;
    /// `nil` once the game is over or when the app data is malformed.
    public func mover(in state: ChannelState) -> ParticipantIndex? {
        guard let board = try? Board(appData: state.appData), !board.isOver else { return nil }
        return board.nextMark.seat
    }

    /// Accepts an empty board where both seats stake something.
    public func validateInitial(_ state: ChannelState) throws(AppRuleViolation) {
        let board = try Board(appData: state.appData)
        guard board == Board() else {
            throw AppRuleViolation("the game starts on an empty board, got \(board.markCount) marks")
        }
        guard state.allocation.balances.allSatisfy({ $0 > 0 }) else {
            throw AppRuleViolation("each player must stake something, balances are \(state.allocation)")
        }
        guard state.allocation.total != nil else {
            throw AppRuleViolation("the stakes \(state.allocation) overflow 128 bits")
        }
    }

    /// Accepts exactly two kinds of successor: `mover` placing its symbol in
    /// one empty cell of an unfinished game (paying the winner everything when
    /// the mark completes a line, else keeping the allocation), or the
    /// cooperative close, `current` repeated with `isFinal` set.
    public func validateTransition(
        from current: ChannelState, to next: ChannelState, mover: ParticipantIndex
    ) throws(AppRuleViolation) {
        let before = try Board(appData: current.appData)
        let after = try Board(appData: next.appData)
        if next.isFinal {
            return try Self.validateClose(from: current, to: next)
        }
        guard !before.isOver else {
            throw AppRuleViolation("the game is already over; only the cooperative close may follow")
        }
        let expected = before.nextMark
        guard mover == expected.seat else {
            throw AppRuleViolation("not your turn: \(expected.seat) (\(expected)) is to move, not \(mover)")
        }
        try Self.validatePlacement(from: before, to: after, by: Mark(seat: mover))
        try Self.validateAllocation(from: current.allocation, to: next.allocation, winner: after.winner)
    }

    /// An unfinished game forfeits the player to move: the other seat gets the
    /// whole total. A finished game (or malformed app data) pays the allocation.
    public func outcome(of state: ChannelState) -> Allocation {
        guard let stopped = mover(in: state), let total = state.allocation.total else {
            return state.allocation
        }
        return Self.allocation(paying: total, to: stopped.peer)
    }

    /// The successor of `state` in which its mover marks `cell` (0...8), with
    /// the allocation paid to the mover when the mark wins. The version and
    /// every other field are left as they are: the result is exactly what
    /// `validateTransition` accepts once the engine bumps the version.
    public static func move(_ cell: Int, in state: ChannelState) throws(AppRuleViolation) -> ChannelState {
        guard !state.isFinal else { throw AppRuleViolation("the state is final; no move may follow") }
        let board = try Board(appData: state.appData)
        guard !board.isOver else { throw AppRuleViolation("the game is already over") }
        guard board.cells.indices.contains(cell) else {
            throw AppRuleViolation("cell \(cell) is off the board; cells are 0...\(Board.cellCount - 1)")
        }
        if let taken = board.cells[cell] {
            throw AppRuleViolation("cell \(cell) is already taken by \(taken)")
        }
        let mark = board.nextMark
        let after = board.placing(mark, at: cell)
        var next = state
        next.appData = after.appData
        if after.winner != nil {
            guard let total = state.allocation.total else {
                throw AppRuleViolation("the stakes \(state.allocation) overflow 128 bits")
            }
            next.allocation = allocation(paying: total, to: mark.seat)
        }
        return next
    }

    /// The close repeats the board and allocation it closes; a move can never be final.
    private static func validateClose(from current: ChannelState, to next: ChannelState) throws(AppRuleViolation) {
        guard next.appData == current.appData, next.allocation == current.allocation else {
            throw AppRuleViolation(
                "a move must not set the final flag; a final state repeats the board and allocation it closes")
        }
    }

    /// Exactly one previously empty cell gains `mark`; taken cells never change.
    private static func validatePlacement(
        from before: Board, to after: Board, by mark: Mark
    ) throws(AppRuleViolation) {
        for cell in before.cells.indices {
            if let taken = before.cells[cell], after.cells[cell] != taken {
                throw AppRuleViolation("cell \(cell) was already taken by \(taken) and cannot change")
            }
        }
        let placed = before.emptyCells.filter { after.cells[$0] != nil }
        guard placed.count == 1, let cell = placed.first, let placedMark = after.cells[cell] else {
            throw AppRuleViolation("a move places exactly one mark, this one places \(placed.count)")
        }
        guard placedMark == mark else {
            throw AppRuleViolation("\(mark.seat) plays \(mark), but cell \(cell) got \(placedMark)")
        }
    }

    /// A winning move pays everything to the winner; any other move keeps the allocation.
    private static func validateAllocation(
        from current: Allocation, to next: Allocation, winner: Mark?
    ) throws(AppRuleViolation) {
        guard let winner else {
            guard next == current else {
                throw AppRuleViolation("a move that does not win keeps the allocation \(current), not \(next)")
            }
            return
        }
        guard let total = current.total else {
            throw AppRuleViolation("the stakes \(current) overflow 128 bits")
        }
        let expected = allocation(paying: total, to: winner.seat)
        guard next == expected else {
            throw AppRuleViolation(
                "winner takes all: the winning move must pay \(expected) to \(winner.seat), not \(next)")
        }
    }

    /// `total` to `seat`, nothing to its peer.
    private static func allocation(paying total: Amount, to seat: ParticipantIndex) -> Allocation {
        var allocation = Allocation(0, 0)
        allocation[seat] = total
        return allocation
    }
}
