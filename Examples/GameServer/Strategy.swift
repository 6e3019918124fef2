import ParleyCrypto
import ParleyGames

/// How each side picks its cell. The server plays O well enough to draw most games; the
/// load generator plays X at random (seeded, so a run can be replayed).
enum Strategy {
    typealias Board = TicTacToe.Board

    /// The server's move: win if it can, else block the opponent's win, else take the
    /// centre, else the first free cell. Nil when the board has no free cell.
    static func answer(on board: Board) -> Int? {
        let me = board.nextMark
        let them: TicTacToe.Mark = me == .x ? .o : .x
        if let win = completing(me, on: board) { return win }
        if let block = completing(them, on: board) { return block }
        if board.mark(at: centre) == nil { return centre }
        return board.emptyCells.first
    }

    /// A uniformly random free cell, nil when the board is full.
    static func random(on board: Board, using generator: inout SeededRandom) -> Int? {
        board.emptyCells.randomElement(using: &generator)
    }

    private static let centre = 4

    /// An empty cell that gives `mark` a complete line.
    private static func completing(_ mark: TicTacToe.Mark, on board: Board) -> Int? {
        for line in Board.lines {
            let marks = line.map { board.mark(at: $0) }
            guard marks.count(where: { $0 == mark }) == 2, let gap = line.first(where: { board.mark(at: $0) == nil })
            else { continue }
            return gap
        }
        return nil
    }
}
