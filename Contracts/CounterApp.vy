# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title Parley counter app rules (app id `test.counter/1`)
@license MIT
@notice The turn-taking reference app the conformance suite and drills use, as
        ParleySettlement's CounterApp: one counter byte; seat 0 moves on an even counter,
        seat 1 on an odd one; the only move adds one (wrapping at 256) and keeps balances.
        A refused move reverts with "invalidMove: " and the reason.
"""

MAX_APP_DATA: constant(uint256) = 1024
NO_MOVER: constant(uint8) = 2

struct State:
    channelId: bytes32
    version: uint64
    balances: uint256[2]
    appData: Bytes[MAX_APP_DATA]
    isFinal: bool


@pure
@internal
def _counter(state: State) -> uint256:
    return convert(slice(state.appData, 0, 1), uint256)


@pure
@external
def mover(state: State) -> uint8:
    if len(state.appData) != 1:
        return NO_MOVER
    return convert(self._counter(state) % 2, uint8)


@pure
@external
def validTransition(current: State, next: State, mover: uint8) -> bool:
    assert len(current.appData) == 1 and len(next.appData) == 1, "invalidMove: app data must be one counter byte"
    assert self._counter(next) == (self._counter(current) + 1) % 256, "invalidMove: the counter must go up by exactly one"
    assert next.balances[0] == current.balances[0] and next.balances[1] == current.balances[1], "invalidMove: a move does not change balances"
    return True


@pure
@external
def outcome(state: State) -> uint256[2]:
    return state.balances
