# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title Parley adjudicator
@license MIT
@notice Settles two-party Parley channels of the Ethereum channel backend, with the rules
        Docs/Settlement.md states for LocalChain: deposit (the opening is fixed by the
        channel's params and the first deposit, never by who deposits first), reclaim
        before funding, register, refute without extending the window, progress for app
        channels, conclude, withdraw once.
        One deployment holds one asset: native ETH when `token` is the zero address, else
        that ERC-20 token. The channel id binds this contract's address, so a state signed
        for one deployment (one asset, one chain) is worthless on any other.
        Every refusal reverts with the name of the SettlementError case it stands for
        (Docs/Ethereum.md, "Reverts"), so any client can read why.
"""

# ---------------------------------------------------------------------------------------
# Types. The ABI of these structs is what Parley's Swift adapter encodes
# (Sources/ParleyEthereum/AdjudicatorABI.swift); the channel id and the EIP-712 digest are
# those of Sources/ParleyChannel/Backend/EthereumBackend.swift.

MAX_APP_DATA: constant(uint256) = 1024

struct Params:
    identities: bytes32[2]      # the peers' Ed25519 transport identities, opaque here
    signers: address[2]         # whose signatures (and transactions) each seat accepts
    nonce: bytes32
    challengeDuration: uint64
    appId: String[64]

struct State:
    channelId: bytes32
    version: uint64
    balances: uint256[2]
    appData: Bytes[MAX_APP_DATA]
    isFinal: bool

struct Signature:
    v: uint8
    r: bytes32
    s: bytes32

struct AppEntry:
    appIdHash: bytes32          # keccak256 of the app id string
    rules: address              # a contract with the IAppRules functions

interface IAppRules:
    def mover(state: State) -> uint8: view
    def validTransition(current: State, next: State, mover: uint8) -> bool: view
    def outcome(state: State) -> uint256[2]: view

# One channel in three words. Amounts are at most 128 bits (Parley's Amount), so two
# seats share a word: seat 0 in the low half, seat 1 in the high half.
struct Channel:
    # The seats' deposits until the first registration; from then on, the payout the
    # registered state concludes with (deposits are then the opening: funded).
    money: uint256
    opening: uint256
    # Flags in bits 0-7, the registered version in bits 8-71, the deadline in 72-135.
    meta: uint256

EXISTS: constant(uint256) = 1
FUNDED: constant(uint256) = 2
DEPOSITS_CLOSED: constant(uint256) = 4
REGISTERED: constant(uint256) = 8
PROGRESSED: constant(uint256) = 16
CONCLUDED: constant(uint256) = 32
WITHDRAWN_0: constant(uint256) = 64
WITHDRAWN_1: constant(uint256) = 128
FLAG_BITS: constant(uint256) = 255

MAX_AMOUNT: constant(uint256) = 2**128 - 1
# Gas a final registration's payouts forward: an account without code needs none (the
# value call's 2,300 stipend is added); a token's transfer needs a few storage writes.
PUSH_GAS: constant(uint256) = 0
PUSH_TOKEN_GAS: constant(uint256) = 100000
MAX_TIME: constant(uint256) = 2**64 - 1
NO_MOVER: constant(uint8) = 2
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

DOMAIN_TYPEHASH: constant(bytes32) = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
STATE_TYPEHASH: constant(bytes32) = keccak256("State(bytes32 channelId,uint64 version,uint256[2] balances,bytes32 appDataHash,bool isFinal)")
PAYMENT_APP: constant(bytes32) = keccak256("parley.payment/1")

# ---------------------------------------------------------------------------------------
# Events. `Opened` carries the params and opening of a channel's first deposit, and
# `Registered`/`Progressed` the whole state, so a client rebuilds a channel from logs.

event Opened:
    channelId: indexed(bytes32)
    identities: bytes32[2]
    signers: address[2]
    nonce: bytes32
    challengeDuration: uint64
    appId: String[64]
    opening: uint256[2]

event Deposited:
    channelId: indexed(bytes32)
    participant: uint8
    amount: uint256
    totalDeposited: uint256

event Funded:
    channelId: indexed(bytes32)

event Registered:
    channelId: indexed(bytes32)
    version: uint64
    deadline: uint64
    by: uint8
    balances: uint256[2]
    appData: Bytes[MAX_APP_DATA]
    isFinal: bool

event Progressed:
    channelId: indexed(bytes32)
    version: uint64
    deadline: uint64
    mover: uint8
    balances: uint256[2]
    appData: Bytes[MAX_APP_DATA]

event Concluded:
    channelId: indexed(bytes32)
    version: uint64
    payout: uint256[2]

event Withdrawn:
    channelId: indexed(bytes32)
    participant: uint8
    amount: uint256

event Reclaimed:
    channelId: indexed(bytes32)
    participant: uint8
    amount: uint256

# ---------------------------------------------------------------------------------------
# Storage

channels: public(HashMap[bytes32, Channel])
# keccak256(abi_encode(state)) of the registered state of channels whose app has rules
# here: `progress` takes the registered state in calldata and checks it against this.
stateHashes: public(HashMap[bytes32, bytes32])
apps: public(HashMap[bytes32, address])
token: public(immutable(address))
# The chain id at deployment: channel ids and the EIP-712 domain both use it, so a fork
# that changes the chain id changes neither (the channels stay the deployment's).
CHAIN_ID: public(immutable(uint256))
DOMAIN_SEPARATOR: public(immutable(bytes32))


@deploy
def __init__(token_: address, apps_: DynArray[AppEntry, 16]):
    token = token_
    CHAIN_ID = chain.id
    DOMAIN_SEPARATOR = keccak256(abi_encode(DOMAIN_TYPEHASH, keccak256("Parley"), keccak256("1"), chain.id, self))
    for entry: AppEntry in apps_:
        self.apps[entry.appIdHash] = entry.rules


# ---------------------------------------------------------------------------------------
# Views

@view
@external
def channelId(params: Params) -> bytes32:
    return self._id(params)


@view
@external
def stateDigest(state: State) -> bytes32:
    return self._digest(state)


# ---------------------------------------------------------------------------------------
# Money in and out

@payable
@external
@nonreentrant
def deposit(params: Params, opening: uint256[2], participant: uint8, amount: uint256):
    assert participant < 2, "notAParticipant"
    seat: uint256 = convert(participant, uint256)
    assert msg.sender == params.signers[seat], "notAParticipant"
    assert params.signers[0] != empty(address) and params.signers[1] != empty(address), "notAParticipant"
    assert amount > 0, "zeroAmount"
    assert opening[0] <= MAX_AMOUNT and opening[1] <= MAX_AMOUNT and opening[0] + opening[1] <= MAX_AMOUNT, "balanceOverflow"
    id: bytes32 = self._id(params)
    c: Channel = self.channels[id]
    packed: uint256 = opening[0] | (opening[1] << 128)
    first: bool = c.meta & EXISTS == 0
    if first:
        c.opening = packed
        c.meta = EXISTS
    else:
        assert c.opening == packed, "openingMismatch"
    assert c.meta & FUNDED == 0, "alreadyFunded"
    assert c.meta & DEPOSITS_CLOSED == 0, "depositsClosed"
    deposited: uint256 = self._seat(c.money, seat)
    assert amount <= opening[seat] - deposited, "overDeposit"
    total: uint256 = deposited + amount
    c.money = self._withSeat(c.money, seat, total)
    if c.money == c.opening:
        c.meta |= FUNDED
    self.channels[id] = c
    self._pull(amount, msg.value)
    if first:
        log Opened(
            channelId=id, identities=params.identities, signers=params.signers, nonce=params.nonce,
            challengeDuration=params.challengeDuration, appId=params.appId, opening=opening)
    log Deposited(channelId=id, participant=participant, amount=amount, totalDeposited=total)
    if c.meta & FUNDED != 0:
        log Funded(channelId=id)


@external
@nonreentrant
def reclaim(params: Params):
    id: bytes32 = self._id(params)
    c: Channel = self._existing(id)
    seat: uint256 = self._seatOf(params, msg.sender)
    assert c.meta & FUNDED == 0, "alreadyFunded"
    amount: uint256 = self._seat(c.money, seat)
    assert amount > 0, "nothingToReclaim"
    c.money = self._withSeat(c.money, seat, 0)
    c.meta |= DEPOSITS_CLOSED
    self.channels[id] = c
    log Reclaimed(channelId=id, participant=convert(seat, uint8), amount=amount)
    self._push(msg.sender, amount)


@external
@nonreentrant
def withdraw(params: Params, participant: uint8):
    id: bytes32 = self._id(params)
    c: Channel = self._existing(id)
    assert participant < 2, "notAParticipant"
    seat: uint256 = convert(participant, uint256)
    assert msg.sender == params.signers[seat], "notAParticipant"
    assert c.meta & CONCLUDED != 0, "notConcluded"
    flag: uint256 = WITHDRAWN_0 << seat
    assert c.meta & flag == 0, "alreadyWithdrawn"
    amount: uint256 = self._seat(c.money, seat)
    assert amount > 0, "nothingToWithdraw"
    c.meta |= flag
    self.channels[id].meta = c.meta
    log Withdrawn(channelId=id, participant=participant, amount=amount)
    self._push(msg.sender, amount)


# ---------------------------------------------------------------------------------------
# Disputes

@external
@nonreentrant
def register(params: Params, state: State, sigs: Signature[2]):
    id: bytes32 = self._id(params)
    assert state.channelId == id, "wrongChannel"
    c: Channel = self._existing(id)
    seat: uint256 = self._seatOf(params, msg.sender)
    assert c.meta & CONCLUDED == 0, "alreadyConcluded"
    assert c.meta & FUNDED != 0, "underfunded"
    digest: bytes32 = self._digest(state)
    assert self._recover(digest, sigs[0]) == params.signers[0], "badSignature0"
    assert self._recover(digest, sigs[1]) == params.signers[1], "badSignature1"
    self._checkConserved(state.balances, c.opening)
    registered: bool = c.meta & REGISTERED != 0
    version: uint256 = (c.meta >> 8) & MAX_TIME
    if registered:
        v: uint256 = convert(state.version, uint256)
        assert v > version or (v == version and c.meta & PROGRESSED != 0), "staleVersion"
    deadline: uint256 = c.meta >> 72
    if registered:
        assert block.timestamp < deadline, "windowClosed"
    else:
        deadline = min(block.timestamp + convert(params.challengeDuration, uint256), MAX_TIME)
    payout: uint256[2] = state.balances
    flags: uint256 = (c.meta & (FLAG_BITS ^ PROGRESSED)) | REGISTERED
    if state.isFinal:
        # A final state concludes and pays both seats at once: a cooperative close is this
        # one transaction. A seat whose transfer fails withdraws later (flag cleared below).
        flags |= CONCLUDED
        if payout[0] > 0:
            flags |= WITHDRAWN_0
        if payout[1] > 0:
            flags |= WITHDRAWN_1
    else:
        rules: address = self.apps[keccak256(params.appId)]
        if rules != empty(address):
            payout = self._outcome(rules, state, c.opening)
            self.stateHashes[id] = keccak256(abi_encode(state))
    c.meta = flags | (convert(state.version, uint256) << 8) | (deadline << 72)
    self.channels[id].money = payout[0] | (payout[1] << 128)
    self.channels[id].meta = c.meta
    log Registered(
        channelId=id, version=state.version, deadline=convert(deadline, uint64), by=convert(seat, uint8),
        balances=state.balances, appData=state.appData, isFinal=state.isFinal)
    if state.isFinal:
        log Concluded(channelId=id, version=state.version, payout=payout)
        for i: uint256 in range(2):
            if payout[i] > 0:
                if self._tryPush(params.signers[i], payout[i]):
                    log Withdrawn(channelId=id, participant=convert(i, uint8), amount=payout[i])
                else:
                    c.meta &= ~(WITHDRAWN_0 << i)
                    self.channels[id].meta = c.meta


@external
def progress(params: Params, current: State, next: State, sig: Signature):
    id: bytes32 = self._id(params)
    c: Channel = self._existing(id)
    seat: uint256 = self._seatOf(params, msg.sender)
    assert next.channelId == id, "wrongChannel"
    assert c.meta & CONCLUDED == 0, "alreadyConcluded"
    assert c.meta & REGISTERED != 0, "nothingRegistered"
    appHash: bytes32 = keccak256(params.appId)
    rules: address = self.apps[appHash]
    if rules == empty(address):
        assert appHash != PAYMENT_APP, "appHasNoTurns"
        raise "unknownApp"
    # A final registration concludes at once, so the registered state here is never final.
    assert keccak256(abi_encode(current)) == self.stateHashes[id], "notRegisteredState"
    mover: uint8 = staticcall IAppRules(rules).mover(current)
    assert mover < NO_MOVER, "appHasNoTurns"
    assert not next.isFinal, "finalStateNeedsBothSignatures"
    assert seat == convert(mover, uint256), "notYourTurn"
    assert current.version < max_value(uint64), "versionsExhausted"
    assert next.version == current.version + 1, "notNextVersion"
    self._checkConserved(next.balances, c.opening)
    assert self._recover(self._digest(next), sig) == params.signers[seat], "badSignature"
    assert staticcall IAppRules(rules).validTransition(current, next, mover), "invalidMove"
    deadline: uint256 = min(block.timestamp + convert(params.challengeDuration, uint256), MAX_TIME)
    payout: uint256[2] = self._outcome(rules, next, c.opening)
    self.stateHashes[id] = keccak256(abi_encode(next))
    self.channels[id].money = payout[0] | (payout[1] << 128)
    self.channels[id].meta = (c.meta & FLAG_BITS) | PROGRESSED | (convert(next.version, uint256) << 8) | (deadline << 72)
    log Progressed(
        channelId=id, version=next.version, deadline=convert(deadline, uint64), mover=mover,
        balances=next.balances, appData=next.appData)


@external
def conclude(channelId: bytes32):
    c: Channel = self._existing(channelId)
    assert c.meta & CONCLUDED == 0, "alreadyConcluded"
    assert c.meta & REGISTERED != 0, "nothingRegistered"
    assert block.timestamp >= c.meta >> 72, "windowStillOpen"
    self.channels[channelId].meta = c.meta | CONCLUDED
    log Concluded(
        channelId=channelId, version=convert((c.meta >> 8) & MAX_TIME, uint64),
        payout=[c.money & MAX_AMOUNT, c.money >> 128])


# ---------------------------------------------------------------------------------------
# Internals

@view
@internal
def _id(params: Params) -> bytes32:
    return keccak256(abi_encode(
        CHAIN_ID, self, params.identities, params.signers, params.nonce, params.challengeDuration,
        keccak256(params.appId)))


@view
@internal
def _digest(state: State) -> bytes32:
    balances: bytes32 = keccak256(abi_encode(state.balances[0], state.balances[1]))
    structHash: bytes32 = keccak256(abi_encode(
        STATE_TYPEHASH, state.channelId, state.version, balances, keccak256(state.appData), state.isFinal))
    return keccak256(concat(x"1901", DOMAIN_SEPARATOR, structHash))


@pure
@internal
def _recover(digest: bytes32, sig: Signature) -> address:
    # ecrecover answers the zero address for what it cannot recover; no seat signs with it
    # (deposit refuses such params), so that answer never matches. High s is refused too.
    if sig.v != 27 and sig.v != 28:
        return empty(address)
    if convert(sig.s, uint256) > HALF_N:
        return empty(address)
    return ecrecover(digest, convert(sig.v, uint256), sig.r, sig.s)


@view
@internal
def _existing(id: bytes32) -> Channel:
    c: Channel = self.channels[id]
    assert c.meta & EXISTS != 0, "unknownChannel"
    return c


@pure
@internal
def _seatOf(params: Params, caller: address) -> uint256:
    if caller == params.signers[0]:
        return 0
    assert caller == params.signers[1], "notAParticipant"
    return 1


@pure
@internal
def _seat(packed: uint256, seat: uint256) -> uint256:
    return (packed >> (128 * seat)) & MAX_AMOUNT


@pure
@internal
def _withSeat(packed: uint256, seat: uint256, amount: uint256) -> uint256:
    offset: uint256 = 128 * seat
    return (packed & ~(MAX_AMOUNT << offset)) | (amount << offset)


@pure
@internal
def _checkConserved(balances: uint256[2], opening: uint256):
    assert balances[0] <= MAX_AMOUNT and balances[1] <= MAX_AMOUNT and balances[0] + balances[1] <= MAX_AMOUNT, "balanceOverflow"
    assert balances[0] + balances[1] == (opening & MAX_AMOUNT) + (opening >> 128), "balanceNotConserved"


@view
@internal
def _outcome(rules: address, state: State, opening: uint256) -> uint256[2]:
    # What a game stopped at `state` pays; the state's own balances when the app's answer
    # does not keep the funded total.
    outcome: uint256[2] = staticcall IAppRules(rules).outcome(state)
    if outcome[0] > MAX_AMOUNT or outcome[1] > MAX_AMOUNT:
        return state.balances
    if outcome[0] + outcome[1] != (opening & MAX_AMOUNT) + (opening >> 128):
        return state.balances
    return outcome


@internal
def _pull(amount: uint256, sent: uint256):
    if token == empty(address):
        assert sent == amount, "wrongValue"
        return
    assert sent == 0, "wrongValue"
    ok: bool = False
    response: Bytes[32] = b""
    ok, response = raw_call(
        token, abi_encode(msg.sender, self, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32, revert_on_failure=False)
    assert ok and (len(response) == 0 or convert(response, bool)), "insufficientBalance"


@internal
def _tryPush(to: address, amount: uint256) -> bool:
    # Bounded gas, and a failure is not fatal: an address that refuses the money (code
    # delegated by EIP-7702, a token's blocklist) cannot stop the other seat's close.
    if token == empty(address):
        return raw_call(to, b"", value=amount, gas=PUSH_GAS, revert_on_failure=False)
    ok: bool = False
    response: Bytes[32] = b""
    ok, response = raw_call(
        token, abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
        max_outsize=32, gas=PUSH_TOKEN_GAS, revert_on_failure=False)
    return ok and (len(response) == 0 or convert(response, bool))


@internal
def _push(to: address, amount: uint256):
    if token == empty(address):
        raw_call(to, b"", value=amount)
        return
    ok: bool = False
    response: Bytes[32] = b""
    ok, response = raw_call(
        token, abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
        max_outsize=32, revert_on_failure=False)
    assert ok and (len(response) == 0 or convert(response, bool)), "transferFailed"
