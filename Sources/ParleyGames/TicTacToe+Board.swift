import ParleyChannel

extension TicTacToe {
    /// One of the two symbols. X belongs to seat `.first` and always opens the game.
    public enum Mark: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// Seat `.first`'s symbol, encoded as cell byte 1.
        case x = 1
        /// Seat `.second`'s symbol, encoded as cell byte 2.
        case o = 2

        /// The symbol the given seat plays.
        public init(seat: ParticipantIndex) {
            self = seat == .first ? .x : .o
        }

        /// The seat that plays this symbol.
        public var seat: ParticipantIndex { self == .x ? .first : .second }

        /// `"X"` or `"O"`.
        public var description: String { self == .x ? "X" : "O" }
    }

    /// The nine cells of the game, row by row, and the canonical 10-byte app data they encode to.
    ///
    /// Parsing checks only the encoding; boards no legal game can reach (two
    /// winners, impossible mark counts) are kept out by `validateTransition`,
    /// which every signed state has passed.
    public struct Board: Hashable, Sendable, CustomStringConvertible {
        /// Nine cells: 3 rows of 3, index `row * 3 + column`.
        public static let cellCount = 9
        /// Byte 0 of the app data; bumped if the encoding ever changes.
        public static let formatVersion: UInt8 = 1
        /// Format byte plus one byte per cell.
        public static let appDataByteCount = 1 + cellCount
        /// The rows, columns and diagonals that win.
        public static let lines: [[Int]] = [
            [0, 1, 2], [3, 4, 5], [6, 7, 8],
            [0, 3, 6], [1, 4, 7], [2, 5, 8],
            [0, 4, 8], [2, 4, 6],
        ]

        /// `cells[i]` is the mark in cell `i`, or `nil` when it is empty. Always `cellCount` long.
        public private(set) var cells: [Mark?]

        /// The empty board a game starts on.
        public init() {
            cells = Array(repeating: nil, count: Self.cellCount)
        }

        /// Decodes canonical app data: the format byte, then one byte per cell (0 empty, 1 X, 2 O).
        public init(appData: [UInt8]) throws(AppRuleViolation) {
            guard appData.count == Self.appDataByteCount else {
                throw AppRuleViolation(
                    "tic-tac-toe app data must be \(Self.appDataByteCount) bytes, got \(appData.count)")
            }
            guard appData[0] == Self.formatVersion else {
                throw AppRuleViolation(
                    "unknown tic-tac-toe app data format \(appData[0]), expected \(Self.formatVersion)")
            }
            var cells: [Mark?] = []
            for (index, byte) in appData.dropFirst().enumerated() {
                if byte == 0 {
                    cells.append(nil)
                } else if let mark = Mark(rawValue: byte) {
                    cells.append(mark)
                } else {
                    throw AppRuleViolation("cell \(index) holds \(byte); a cell is 0 (empty), 1 (X) or 2 (O)")
                }
            }
            self.cells = cells
        }

        /// The canonical encoding: `formatVersion`, then the cells row by row.
        public var appData: [UInt8] {
            [Self.formatVersion] + cells.map { $0?.rawValue ?? 0 }
        }

        /// The mark in `cell` (0...8), or `nil` when it is empty or out of range.
        public func mark(at cell: Int) -> Mark? {
            cells.indices.contains(cell) ? cells[cell] : nil
        }

        /// The indices of the empty cells, ascending.
        public var emptyCells: [Int] {
            cells.indices.filter { cells[$0] == nil }
        }

        /// How many marks have been placed.
        public var markCount: Int {
            cells.count(where: { $0 != nil })
        }

        /// The symbol that owns a complete line, or `nil`. On a board reached by
        /// legal play at most one symbol can own a line.
        public var winner: Mark? {
            Mark.allCases.first { mark in
                Self.lines.contains { line in line.allSatisfy { cells[$0] == mark } }
            }
        }

        /// Every cell is taken.
        public var isFull: Bool { !cells.contains(nil) }

        /// The game has ended: someone won or the board is full (a draw).
        public var isOver: Bool { winner != nil || isFull }

        /// The symbol that moves next, by parity: X after an even number of marks, O after an odd one.
        /// Meaningless once `isOver`.
        public var nextMark: Mark { markCount.isMultiple(of: 2) ? .x : .o }

        /// The board with `mark` placed in `cell`; the caller has checked the cell is empty.
        func placing(_ mark: Mark, at cell: Int) -> Board {
            var next = self
            next.cells[cell] = mark
            return next
        }

        /// Three rows like `" X | O | . "`, separated by newlines; `.` is an empty cell.
        public var description: String {
            stride(from: 0, to: Self.cellCount, by: 3).map { start in
                cells[start..<start + 3].map { " \($0?.description ?? ".") " }.joined(separator: "|")
            }.joined(separator: "\n")
        }
    }
}
