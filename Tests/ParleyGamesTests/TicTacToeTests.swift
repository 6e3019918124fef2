import Foundation
import ParleyChannel
import ParleyGames
import ParleyWire
import Testing

@Suite struct TicTacToeBoardTests {
    @Test func initialAppDataIsFormatOneAndAnEmptyBoard() throws {
        #expect(TicTacToe.initialAppData == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let board = try Board(appData: TicTacToe.initialAppData)
        #expect(board == Board())
        #expect(board.markCount == 0 && board.winner == nil && !board.isFull && !board.isOver)
    }

    @Test func boardRoundTripsItsAppDataAndRendersRows() throws {
        let data = appData("XO. .X. ..O")
        let board = try Board(appData: data)
        #expect(board.appData == data)
        #expect(board.mark(at: 0) == .x && board.mark(at: 1) == .o && board.mark(at: 2) == nil)
        #expect(board.mark(at: 9) == nil && board.mark(at: -1) == nil)
        #expect(board.emptyCells == [2, 3, 5, 6, 7])
        #expect(board.description == " X | O | . \n . | X | . \n . | . | O ")
    }

    @Test func boardRejectsAppDataOfTheWrongLength() {
        #expect(throws: AppRuleViolation.self) { try Board(appData: []) }
        #expect(throws: AppRuleViolation.self) { try Board(appData: Array(TicTacToe.initialAppData.dropLast())) }
        #expect(throws: AppRuleViolation.self) { try Board(appData: TicTacToe.initialAppData + [0]) }
    }

    @Test func boardRejectsAnUnknownFormatOrCellValue() {
        var wrongFormat = TicTacToe.initialAppData
        wrongFormat[0] = 2
        #expect { try Board(appData: wrongFormat) } throws: { ($0 as? AppRuleViolation)?.reason.contains("format") == true }
        var wrongCell = TicTacToe.initialAppData
        wrongCell[5] = 3
        #expect { try Board(appData: wrongCell) } throws: { ($0 as? AppRuleViolation)?.reason.contains("cell 4") == true }
    }

    @Test func winnerFullAndOverDescribeTheBoard() throws {
        let xWins = try Board(appData: appData("XXX OO. ..."))
        #expect(xWins.winner == .x && xWins.isOver && !xWins.isFull)
        let oWins = try Board(appData: appData("XX. OOO X.."))
        #expect(oWins.winner == .o && oWins.isOver)
        let draw = try Board(appData: appData("XOX XOO OXX"))
        #expect(draw.winner == nil && draw.isFull && draw.isOver)
        let open = try Board(appData: appData("XO. ... ..."))
        #expect(open.winner == nil && !open.isOver && open.nextMark == .x)
    }
}

@Suite struct TicTacToeInitialStateTests {
    @Test func emptyBoardWithBothStakesIsAccepted() throws {
        try rules.validateInitial(initialState())
        #expect(rules.appID == TicTacToe.id)
        #expect(TicTacToe.id.rawValue == "parley.tictactoe/1")
    }

    @Test func markedBoardIsRejectedAsInitial() {
        #expect { try rules.validateInitial(state("X.. ... ...", version: 0)) } throws: {
            ($0 as? AppRuleViolation)?.reason.contains("empty board") == true
        }
    }

    @Test(arguments: [Allocation(0, 40), Allocation(60, 0), Allocation(0, 0)])
    func zeroStakeIsRejectedAsInitial(allocation: Allocation) {
        var opening = initialState()
        opening.allocation = allocation
        #expect { try rules.validateInitial(opening) } throws: {
            ($0 as? AppRuleViolation)?.reason.contains("stake") == true
        }
    }

    @Test func malformedAppDataIsRejectedAsInitial() {
        var opening = initialState()
        opening.appData = []
        #expect(throws: AppRuleViolation.self) { try rules.validateInitial(opening) }
    }
}

@Suite struct TicTacToeIllegalMoveTests {
    @Test func malformedNextAppDataIsRejected() {
        let current = initialState()
        var short = current
        short.appData = Array(appData("X.. ... ...").dropLast())
        expectRejected(from: current, to: short, mover: .first, mentioning: "10 bytes")
        var badFormat = state("X.. ... ...")
        badFormat.appData[0] = 9
        expectRejected(from: current, to: badFormat, mover: .first, mentioning: "format")
        var badCell = state("X.. ... ...")
        badCell.appData[9] = 7
        expectRejected(from: current, to: badCell, mover: .first, mentioning: "cell 8")
    }

    @Test func malformedCurrentAppDataIsRejected() {
        var current = initialState()
        current.appData = [1, 2, 3]
        expectRejected(from: current, to: state("X.. ... ..."), mover: .first, mentioning: "10 bytes")
    }

    @Test func moveAfterAWinIsRejected() {
        let won = state("XXX OO. ...", Allocation(100, 0))
        expectRejected(from: won, to: state("XXX OOO ...", Allocation(100, 0)), mover: .second, mentioning: "already over")
    }

    @Test func moveAfterADrawIsRejected() {
        let drawn = state("XOX XOO OXX")
        expectRejected(from: drawn, to: drawn, mover: .first, mentioning: "already over")
    }

    @Test func moveOutOfTurnIsRejected() {
        expectRejected(from: initialState(), to: state("O.. ... ..."), mover: .second, mentioning: "not your turn")
        expectRejected(from: state("X.. ... ..."), to: state("XX. ... ..."), mover: .first, mentioning: "not your turn")
    }

    @Test func moveWithoutANewMarkIsRejected() {
        let current = state("X.. .O. ...")
        expectRejected(from: current, to: current, mover: .first, mentioning: "exactly one mark")
    }

    @Test func moveWithTwoNewMarksIsRejected() {
        expectRejected(from: initialState(), to: state("XX. ... ..."), mover: .first, mentioning: "exactly one mark")
        expectRejected(from: initialState(), to: state("XO. ... ..."), mover: .first, mentioning: "exactly one mark")
    }

    @Test func moveWithTheOpponentsSymbolIsRejected() {
        expectRejected(from: initialState(), to: state("O.. ... ..."), mover: .first, mentioning: "plays X")
        expectRejected(from: state("X.. ... ..."), to: state("XX. ... ..."), mover: .second, mentioning: "plays O")
    }

    @Test func moveThatChangesATakenCellIsRejected() {
        let current = state("XO. ... ...")
        expectRejected(from: current, to: state("XX. ... ..."), mover: .first, mentioning: "already taken")
        expectRejected(from: current, to: state(".OX ... ..."), mover: .first, mentioning: "already taken")
        expectRejected(from: current, to: state("OO. X.. ..."), mover: .first, mentioning: "already taken")
    }

    @Test func winningMoveThatDoesNotPayTheWinnerEverythingIsRejected() {
        let current = state("XX. OO. ...")
        for allocation in [stakes, Allocation(0, 100), Allocation(99, 1)] {
            expectRejected(
                from: current, to: state("XXX OO. ...", allocation), mover: .first, mentioning: "winner takes all")
        }
    }

    @Test func ordinaryMoveThatChangesTheAllocationIsRejected() {
        expectRejected(
            from: initialState(), to: state("X.. ... ...", Allocation(50, 50)), mover: .first,
            mentioning: "keeps the allocation")
    }

    @Test func drawingMoveThatChangesTheAllocationIsRejected() {
        expectRejected(
            from: state("XOX XOO OX."), to: state("XOX XOO OXX", Allocation(100, 0)), mover: .first,
            mentioning: "keeps the allocation")
    }

    @Test func moveThatSetsTheFinalFlagIsRejected() {
        var next = state("X.. ... ...")
        next.isFinal = true
        expectRejected(from: initialState(), to: next, mover: .first, mentioning: "final flag")
    }

    @Test func closeThatChangesTheAllocationIsRejected() {
        let current = state("XO. ... ...")
        var next = state("XO. ... ...", Allocation(100, 0))
        next.isFinal = true
        expectRejected(from: current, to: next, mover: .first, mentioning: "allocation")
    }
}

@Suite struct TicTacToeOutcomeTests {
    @Test(arguments: winningLines.indices)
    func xWinsEveryLineAndTakesAll(lineIndex: Int) throws {
        let line = winningLines[lineIndex]
        let others = (0..<9).filter { !line.contains($0) }
        let states = try play([line[0], others[0], line[1], others[1], line[2]])
        let end = try #require(states.last)
        #expect(end.allocation == Allocation(100, 0))
        #expect(rules.mover(in: end) == nil)
        #expect(rules.outcome(of: end) == end.allocation)
        #expect(try Board(appData: end.appData).winner == .x)
        for before in states.dropLast() {
            #expect(before.allocation == stakes)
        }
    }

    @Test(arguments: winningLines.indices)
    func oWinsEveryLineAndTakesAll(lineIndex: Int) throws {
        let line = winningLines[lineIndex]
        let others = (0..<9).filter { !line.contains($0) }
        // X needs three marks that do not themselves make a line.
        let xCells = try #require(
            others.combinations3.first { triple in !winningLines.contains { Set($0) == Set(triple) } })
        let states = try play([xCells[0], line[0], xCells[1], line[1], xCells[2], line[2]])
        let end = try #require(states.last)
        #expect(end.allocation == Allocation(0, 100))
        #expect(rules.mover(in: end) == nil)
        #expect(rules.outcome(of: end) == end.allocation)
        #expect(try Board(appData: end.appData).winner == .o)
    }

    @Test func drawKeepsTheAllocationAndEndsTheGame() throws {
        // X O X / X O O / O X X
        let states = try play([0, 1, 2, 4, 3, 5, 7, 6, 8])
        let end = try #require(states.last)
        let board = try Board(appData: end.appData)
        #expect(board.isFull && board.winner == nil)
        #expect(states.allSatisfy { $0.allocation == stakes })
        #expect(rules.mover(in: end) == nil)
        #expect(rules.outcome(of: end) == stakes)
        #expect(throws: AppRuleViolation.self) { try TicTacToe.move(0, in: end) }
    }

    @Test func unfinishedGamePaysEverythingToThePlayerNotToMove() throws {
        #expect(rules.outcome(of: initialState()) == Allocation(0, 100))
        #expect(rules.outcome(of: state("X.. ... ...")) == Allocation(100, 0))
        #expect(rules.outcome(of: state("XO. .X. ...")) == Allocation(100, 0))
        #expect(rules.outcome(of: state("XOX XOO OX.")) == Allocation(0, 100))
    }

    @Test func malformedStatePaysItsAllocation() {
        var broken = initialState()
        broken.appData = [1, 2]
        #expect(rules.outcome(of: broken) == stakes)
        #expect(rules.mover(in: broken) == nil)
    }

    @Test func moverAlternatesByMarkCount() {
        #expect(rules.mover(in: initialState()) == .first)
        #expect(rules.mover(in: state("X.. ... ...")) == .second)
        #expect(rules.mover(in: state("X.. .O. ...")) == .first)
    }

    @Test func cooperativeCloseIsAcceptedAtAnyPoint() throws {
        let points = [
            initialState(), state("XO. .X. ..."), state("XXX OO. ...", Allocation(100, 0)), state("XOX XOO OXX"),
        ]
        for current in points {
            var close = current
            close.version += 1
            close.isFinal = true
            for mover in ParticipantIndex.allCases {
                try rules.validateTransition(from: current, to: close, mover: mover)
            }
        }
    }
}

@Suite struct TicTacToeMoveHelperTests {
    @Test func moveRejectsCellsOffTheBoard() {
        for cell in [-1, 9, 100] {
            #expect { try TicTacToe.move(cell, in: initialState()) } throws: {
                ($0 as? AppRuleViolation)?.reason.contains("off the board") == true
            }
        }
    }

    @Test func moveRejectsAFinalState() {
        var closed = initialState()
        closed.isFinal = true
        #expect { try TicTacToe.move(0, in: closed) } throws: {
            ($0 as? AppRuleViolation)?.reason.contains("final") == true
        }
    }

    @Test func moveLeavesTheVersionAndChannelAlone() throws {
        let current = state("X.. ... ...", version: 7)
        let next = try TicTacToe.move(4, in: current)
        #expect(next.version == 7 && next.channelID == current.channelID && !next.isFinal)
        #expect(next.appData == appData("X.. .O. ..."))
    }

    /// From each position, every empty cell is a legal move (built by hand, and by `move`, identically)
    /// and every taken cell is refused, by `validateTransition` and by `move`.
    @Test(arguments: ["... ... ...", "X.. ... ...", "XO. .X. ...", "XX. OO. ...", "XOX .O. ..X", "XOX XOO OX."])
    func everyEmptyCellIsLegalAndEveryTakenCellIsNot(picture: String) throws {
        let current = state(picture)
        let before = try Board(appData: current.appData)
        let mover = try #require(rules.mover(in: current))
        let symbol: UInt8 = mover == .first ? 1 : 2
        for cell in 0..<9 {
            var next = current
            next.appData[1 + cell] = symbol
            if before.mark(at: cell) == nil {
                if try Board(appData: next.appData).winner != nil {
                    next.allocation = mover == .first ? Allocation(100, 0) : Allocation(0, 100)
                }
                try rules.validateTransition(from: current, to: next, mover: mover)
                #expect(try TicTacToe.move(cell, in: current) == next)
            } else {
                // Re-marking one's own cell changes nothing, so it is refused as placing no mark.
                let ownCell = before.mark(at: cell)?.seat == mover
                expectRejected(
                    from: current, to: next, mover: mover, mentioning: ownCell ? "exactly one mark" : "already taken")
                #expect { try TicTacToe.move(cell, in: current) } throws: {
                    ($0 as? AppRuleViolation)?.reason.contains("already taken") == true
                }
            }
        }
    }
}

@Suite struct TicTacToeRandomGameTests {
    static let gameCount = 2_000

    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["PARLEY_TICTACTOE_SEED"].flatMap(UInt64.init)
        ?? UInt64.random(in: 1...UInt64.max)

    @Test func randomLegalGamesConserveStakesAlternateAndEndInExactlyOneResult() throws {
        print("TicTacToe random games seed \(Self.seed) (replay: PARLEY_TICTACTOE_SEED=\(Self.seed))")
        let replay = "replay with PARLEY_TICTACTOE_SEED=\(Self.seed)"
        var rng = Xorshift(seed: Self.seed)
        var results = (xWins: 0, oWins: 0, draws: 0)
        for _ in 0..<Self.gameCount {
            var current = initialState()
            current.allocation = Allocation(Amount(UInt64.random(in: 1...1_000, using: &rng)), Amount(UInt64.random(in: 1...1_000, using: &rng)))
            try rules.validateInitial(current)
            let total = try #require(current.allocation.total)
            let staked = current.allocation
            while let mover = rules.mover(in: current) {
                let board = try Board(appData: current.appData)
                let cell = try #require(board.emptyCells.randomElement(using: &rng))
                var next = try TicTacToe.move(cell, in: current)
                next.version += 1
                try rules.validateTransition(from: current, to: next, mover: mover)
                #expect(next.allocation.total == total, "total not conserved; \(replay)")
                let following = rules.mover(in: next)
                #expect(following == nil || following == mover.peer, "mover did not alternate; \(replay)")
                current = next
            }
            let end = try Board(appData: current.appData)
            let won = end.winner != nil
            let drawn = end.isFull && !won
            #expect(won != drawn, "exactly one of win/draw must hold:\n\(end); \(replay)")
            #expect(rules.outcome(of: current) == current.allocation, "\(replay)")
            switch end.winner {
            case .x?:
                results.xWins += 1
                #expect(current.allocation == Allocation(total, 0), "\(replay)")
            case .o?:
                results.oWins += 1
                #expect(current.allocation == Allocation(0, total), "\(replay)")
            case nil:
                results.draws += 1
                #expect(current.allocation == staked, "a draw keeps the stakes; \(replay)")
            }
        }
        // Random play reaches every kind of ending many times over 2,000 games.
        #expect(results.xWins > 0 && results.oWins > 0 && results.draws > 0, "\(results); \(replay)")
    }
}

extension Array {
    /// Every 3-element subsequence, in order.
    var combinations3: [[Element]] {
        var result: [[Element]] = []
        for i in indices {
            for j in indices where j > i {
                for k in indices where k > j {
                    result.append([self[i], self[j], self[k]])
                }
            }
        }
        return result
    }
}
