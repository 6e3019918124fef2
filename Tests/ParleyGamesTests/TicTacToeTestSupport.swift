import ParleyChannel
import ParleyCrypto
import ParleyGames
import Testing

typealias Board = TicTacToe.Board

/// The eight winning lines, written out independently of `Board.lines`.
let winningLines: [[Int]] = [
    [0, 1, 2], [3, 4, 5], [6, 7, 8],
    [0, 3, 6], [1, 4, 7], [2, 5, 8],
    [0, 4, 8], [2, 4, 6],
]

let rules = TicTacToe()
let stakes = Allocation(60, 40)
let testChannel = ChannelID(digest: try! Digest(bytes: [UInt8](repeating: 0x7a, count: 32)))

/// App data for a picture like `"XO. .X. ..O"`: `X`, `O` and `.` fill cells 0...8, anything else is ignored.
func appData(_ picture: String) -> [UInt8] {
    let cells: [UInt8] = picture.compactMap { character in
        switch character {
        case "X": 1
        case "O": 2
        case ".": 0
        default: nil
        }
    }
    precondition(cells.count == 9, "a picture has nine cells")
    return [1] + cells
}

/// A non-final state showing `picture`, holding `allocation`.
func state(_ picture: String, _ allocation: Allocation = stakes, version: UInt64 = 1) -> ChannelState {
    ChannelState(channelID: testChannel, version: version, allocation: allocation, appData: appData(picture))
}

/// The opening state: empty board, `stakes`.
func initialState() -> ChannelState {
    ChannelState(channelID: testChannel, version: 0, allocation: stakes, appData: TicTacToe.initialAppData)
}

/// Checks that `rules` rejects the transition and that the reason mentions `phrase`.
func expectRejected(
    from current: ChannelState, to next: ChannelState, mover: ParticipantIndex, mentioning phrase: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        try rules.validateTransition(from: current, to: next, mover: mover)
        Issue.record("accepted an illegal move; expected a reason mentioning \"\(phrase)\"", sourceLocation: sourceLocation)
    } catch {
        #expect(error.reason.contains(phrase), "reason: \(error.reason)", sourceLocation: sourceLocation)
    }
}

/// Plays `cells` from the opening state with `TicTacToe.move`, checking every step is accepted
/// by `validateTransition` for the seat `mover(in:)` names, and returns every state reached.
func play(_ cells: [Int], sourceLocation: SourceLocation = #_sourceLocation) throws -> [ChannelState] {
    var states = [initialState()]
    for cell in cells {
        let current = states[states.count - 1]
        let mover = try #require(rules.mover(in: current), sourceLocation: sourceLocation)
        var next = try TicTacToe.move(cell, in: current)
        next.version += 1
        try rules.validateTransition(from: current, to: next, mover: mover)
        states.append(next)
    }
    return states
}

/// A seeded xorshift64* generator, so a failing random game can be replayed from its printed seed.
struct Xorshift: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
