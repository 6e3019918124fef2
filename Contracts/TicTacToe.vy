# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title Parley tic-tac-toe rules (app id `parley.tictactoe/1`)
@license MIT
@notice The rules of ParleyGames' TicTacToe, for the adjudicator's `progress` and
        `conclude`. App data: a format byte (1), then nine cells row by row (0 empty, 1 X,
        2 O). Seat 0 plays X and moves first. The mark that completes a line pays the whole
        total to its mover; every other move keeps the allocation. Concluding on an
        unfinished game pays everything to the seat that is not to move (the one who
        stopped forfeits). A refused move reverts with "invalidMove: " and the reason.
"""

MAX_APP_DATA: constant(uint256) = 1024
NO_MOVER: constant(uint8) = 2
EMPTY: constant(uint256) = 0

struct State:
    channelId: bytes32
    version: uint64
    balances: uint256[2]
    appData: Bytes[MAX_APP_DATA]
    isFinal: bool

LINES: constant(uint256[3][8]) = [
    [0, 1, 2], [3, 4, 5], [6, 7, 8],
    [0, 3, 6], [1, 4, 7], [2, 5, 8],
    [0, 4, 8], [2, 4, 6],
]


@pure
@internal
def _board(appData: Bytes[MAX_APP_DATA]) -> (bool, uint256[9]):
    """The nine cells, or False when the app data is not a board."""
    cells: uint256[9] = empty(uint256[9])
    if len(appData) != 10:
        return False, cells
    if convert(slice(appData, 0, 1), uint256) != 1:
        return False, cells
    for i: uint256 in range(9):
        cell: uint256 = convert(slice(appData, i + 1, 1), uint256)
        if cell > 2:
            return False, cells
        cells[i] = cell
    return True, cells


@pure
@internal
def _winner(cells: uint256[9]) -> uint256:
    """The mark (1 X, 2 O) that owns a complete line, X first; 0 when none does."""
    for mark: uint256 in [1, 2]:
        for line: uint256[3] in LINES:
            if cells[line[0]] == mark and cells[line[1]] == mark and cells[line[2]] == mark:
                return mark
    return 0


@pure
@internal
def _marks(cells: uint256[9]) -> uint256:
    count: uint256 = 0
    for i: uint256 in range(9):
        if cells[i] != EMPTY:
            count += 1
    return count


@pure
@internal
def _mover(appData: Bytes[MAX_APP_DATA]) -> uint8:
    ok: bool = False
    cells: uint256[9] = empty(uint256[9])
    ok, cells = self._board(appData)
    if not ok:
        return NO_MOVER
    marks: uint256 = self._marks(cells)
    if self._winner(cells) != 0 or marks == 9:
        return NO_MOVER
    return convert(marks % 2, uint8)


@pure
@external
def mover(state: State) -> uint8:
    return self._mover(state.appData)


@pure
@external
def validTransition(current: State, next: State, mover: uint8) -> bool:
    ok: bool = False
    before: uint256[9] = empty(uint256[9])
    after: uint256[9] = empty(uint256[9])
    ok, before = self._board(current.appData)
    assert ok, "invalidMove: the current state is not a tic-tac-toe board"
    ok, after = self._board(next.appData)
    assert ok, "invalidMove: the new state is not a tic-tac-toe board"
    if next.isFinal:
        assert keccak256(next.appData) == keccak256(current.appData) and next.balances[0] == current.balances[0] and next.balances[1] == current.balances[1], "invalidMove: a final state repeats the board and allocation it closes"
        return True
    expected: uint8 = self._mover(current.appData)
    assert expected != NO_MOVER, "invalidMove: the game is already over"
    assert mover == expected, "invalidMove: not your turn"
    mark: uint256 = convert(mover, uint256) + 1
    placed: uint256 = 0
    for i: uint256 in range(9):
        if before[i] != EMPTY:
            assert after[i] == before[i], "invalidMove: a taken cell cannot change"
        elif after[i] != EMPTY:
            assert after[i] == mark, "invalidMove: the mover placed the other player's mark"
            placed += 1
    assert placed == 1, "invalidMove: a move places exactly one mark"
    if self._winner(after) == mark:
        total: uint256 = current.balances[0] + current.balances[1]
        assert next.balances[mover] == total and next.balances[1 - convert(mover, uint256)] == 0, "invalidMove: winner takes all"
    else:
        assert next.balances[0] == current.balances[0] and next.balances[1] == current.balances[1], "invalidMove: a move that does not win keeps the allocation"
    return True


@pure
@external
def outcome(state: State) -> uint256[2]:
    stopped: uint8 = self._mover(state.appData)
    if stopped == NO_MOVER:
        return state.balances
    total: uint256 = state.balances[0] + state.balances[1]
    if stopped == 0:
        return [0, total]
    return [total, 0]
