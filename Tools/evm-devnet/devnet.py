#!/usr/bin/env python3
"""A small local Ethereum dev chain served over standard JSON-RPC (HTTP POST on /).

Built on py-evm (the EVM eth-tester drives), with automine, time travel, snapshots
and geth-shaped errors, for clients that would otherwise talk to anvil or geth --dev.
See README.md beside this file. Only the standard library and the packages pinned in
requirements.txt are used.
"""

import argparse
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rlp
from eth.chains.base import MiningChain
from eth.consensus import ConsensusApplier, NoProofConsensus
from eth.constants import GENESIS_PARENT_HASH
from eth.db.atomic import AtomicDB
from eth.exceptions import (
    InsufficientFunds,
    InvalidInstruction,
    OutOfGas,
    Revert,
)
from eth.vm.forks import CancunVM, PragueVM
from eth.vm.spoof import SpoofTransaction
from eth._utils.address import generate_contract_address
from eth_tester.backends.pyevm.main import get_account_keys_from_mnemonic
from eth_utils import ValidationError, keccak, to_checksum_address

VALIDATION_ERRORS = (ValidationError,)  # what py-evm raises for an invalid transaction or header

VERSION = "parley-evm-devnet/0.1.0 (py-evm)"
GWEI = 10**9
PRIORITY_FEE = 1 * GWEI
DEFAULT_GAS_LIMIT = 30_000_000
ZERO_ADDRESS = b"\x00" * 20
ZERO_HASH = b"\x00" * 32
# anvil's and hardhat's well-known development mnemonic: the same keys every run, and the
# same first accounts a developer knows from those tools (0xf39F…2266 is account 0).
DEV_MNEMONIC = "test test test test test test test test test test test junk"
HARDFORKS = {"prague": PragueVM, "cancun": CancunVM}
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
PANIC_REASONS = {
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesN",
    0x41: "out of memory",
    0x51: "uninitialized function",
}

log = logging.getLogger("devnet")


# --------------------------------------------------------------------------- errors


class RpcError(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self):
        err = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message):
    return RpcError(-32602, message)


def tx_error(message):
    return RpcError(-32000, message)


# --------------------------------------------------------------------------- encoding


def hq(n):
    return hex(int(n))


def hb(b):
    return "0x" + bytes(b).hex()


def ha(b):
    return None if not b else "0x" + bytes(b).hex()


def h32(n):
    return "0x" + int(n).to_bytes(32, "big").hex()


def parse_quantity(v, name="quantity"):
    if isinstance(v, bool):
        raise invalid_params(f"invalid {name}: {v!r}")
    if isinstance(v, int):
        if v < 0:
            raise invalid_params(f"invalid {name}: negative")
        return v
    if isinstance(v, str) and v[:2] in ("0x", "0X") and len(v) > 2:
        try:
            return int(v[2:], 16)
        except ValueError:
            pass
    raise invalid_params(f"invalid {name}: {v!r} (expected a 0x-prefixed hex quantity)")


def parse_data(v, name="data"):
    if isinstance(v, str) and v[:2] in ("0x", "0X"):
        body = v[2:]
        if len(body) % 2 == 0:
            try:
                return bytes.fromhex(body)
            except ValueError:
                pass
    raise invalid_params(f"invalid {name}: expected 0x-prefixed hex bytes of even length")


def parse_address(v, name="address"):
    b = parse_data(v, name) if isinstance(v, str) else None
    if b is None or len(b) != 20:
        raise invalid_params(f"invalid {name}: expected a 20-byte 0x-hex address")
    return b


def parse_hash(v, name="hash"):
    b = parse_data(v, name) if isinstance(v, str) else None
    if b is None or len(b) != 32:
        raise invalid_params(f"invalid {name}: expected a 32-byte 0x-hex hash")
    return b


def parse_bool(v, name="flag"):
    if not isinstance(v, bool):
        raise invalid_params(f"invalid {name}: expected true or false")
    return v


def decode_revert_reason(data):
    """The part after "execution reverted: " as geth words it, or None."""
    if data[:4] == ERROR_SELECTOR and len(data) >= 4 + 64:
        try:
            offset = int.from_bytes(data[4:36], "big")
            length = int.from_bytes(data[4 + offset : 4 + offset + 32], "big")
            raw = data[4 + offset + 32 : 4 + offset + 32 + length]
            if len(raw) == length:
                return raw.decode("utf-8", errors="replace")
        except (ValueError, OverflowError):
            return None
    if data[:4] == PANIC_SELECTOR and len(data) == 36:
        code = int.from_bytes(data[4:], "big")
        return PANIC_REASONS.get(code, f"unknown panic code: {code:#x}")
    return None


def revert_error(data):
    reason = decode_revert_reason(data)
    message = "execution reverted" + (f": {reason}" if reason is not None else "")
    return RpcError(3, message, hb(data))


def vm_error_message(err):
    if isinstance(err, OutOfGas):
        return "out of gas"
    if isinstance(err, InvalidInstruction):
        return "invalid opcode: " + str(err).removeprefix("Invalid opcode ")
    if isinstance(err, InsufficientFunds):
        return "insufficient funds for gas * price + value"
    text = str(err) or type(err).__name__
    return f"execution failed: {text}"


# --------------------------------------------------------------------------- chain


def derive_accounts(count):
    """anvil's accounts: DEV_MNEMONIC at m/44'/60'/0'/0/i, derived by eth-tester's helper."""
    if count <= 0:
        return []
    return list(get_account_keys_from_mnemonic(DEV_MNEMONIC, quantity=count, hd_path="m/44'/60'/0'/0"))


def same_timestamp_vm(vm_class):
    """vm_class, except that a block may have its parent's timestamp (--manual-time)."""

    class SameTimestampVM(vm_class):
        @classmethod
        def validate_header(cls, header, parent_header):
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                header = header.copy(timestamp=parent_header.timestamp + 1)
            return super().validate_header(header, parent_header)

    SameTimestampVM.__name__ = vm_class.__name__
    return SameTimestampVM


class Devnet:
    """The chain and every RPC method. All access goes through self.lock."""

    def __init__(self, chain_id=1337, accounts=10, balance_wei=10**24, start_time=None,
                 hardfork="prague", gas_limit=DEFAULT_GAS_LIMIT, manual_time=False):
        self.lock = threading.RLock()
        # --manual-time: block timestamps follow a clock that moves only on evm_increaseTime /
        # evm_mine(ts) / evm_setNextBlockTimestamp, never with the wall clock, and blocks may
        # share a timestamp (as hardhat's allowBlocksWithSameTimestamp): a chain whose time
        # stands still between transactions, like Parley's embedded chain, for tests that
        # check exact times.
        self.manual_time = manual_time
        self.chain_id = chain_id
        self.hardfork = hardfork
        self.coinbase = ZERO_ADDRESS
        self.keys = derive_accounts(accounts)
        self.key_by_address = {k.public_key.to_canonical_address(): k for k in self.keys}

        vm_class = HARDFORKS[hardfork]
        if manual_time:
            vm_class = same_timestamp_vm(vm_class)
        vm_config = ConsensusApplier(NoProofConsensus).amend_vm_configuration(((0, vm_class),))
        # A chain class of its own, so that CHAINID, EIP-155 and typed-tx signing use --chain-id.
        chain_class = type(
            "ParleyDevnetChain",
            (MiningChain,),
            {"chain_id": chain_id, "vm_configuration": vm_config},
        )
        now = self._wall()
        genesis_ts = int(time.time()) if start_time is None else int(start_time)
        self.time_offset = genesis_ts - now
        genesis_params = {
            "coinbase": ZERO_ADDRESS,
            "difficulty": 0,
            "extra_data": b"",
            "gas_limit": gas_limit,
            "mix_hash": ZERO_HASH,
            "nonce": b"\x00" * 8,
            "timestamp": genesis_ts,
        }
        genesis_state = {
            addr: {"balance": balance_wei, "nonce": 0, "code": b"", "storage": {}}
            for addr in self.key_by_address
        }
        self.chain = chain_class.from_genesis(AtomicDB(), genesis_params, genesis_state)
        genesis = self.chain.get_canonical_head()
        self.canon = [genesis.hash]  # canonical block hashes by number (ours, not py-evm's)
        self.tx_index = {}  # tx hash -> (block hash, index in block)
        self.next_timestamp = None  # evm_setNextBlockTimestamp
        self.state_root_override = None  # anvil_setBalance & co. on the head state
        self.snapshots = {}  # id -> saved head and clocks
        self.snapshot_counter = 0
        self.blocks_mined = 0  # every block ever mined, reverted ones too (prevrandao seed)
        self._block_cache = {}
        self._receipt_cache = {}

    # ---------------------------------------------------------------- internals

    def head_header(self):
        return self.chain.get_block_header_by_hash(self.canon[-1])

    def get_block(self, block_hash):
        block = self._block_cache.get(block_hash)
        if block is None:
            block = self.chain.get_block_by_hash(block_hash)
            self._block_cache[block_hash] = block
        return block

    def get_receipts(self, block):
        receipts = self._receipt_cache.get(block.hash)
        if receipts is None:
            receipts = block.get_receipts(self.chain.chaindb)
            self._receipt_cache[block.hash] = receipts
        return receipts

    def state_header(self, header):
        """The header whose state_root is the state "after" this block, as queries see it."""
        if self.state_root_override is not None and header.hash == self.canon[-1]:
            return header.copy(state_root=self.state_root_override)
        return header

    def state_at(self, header):
        return self.chain.get_vm(self.state_header(header)).state

    def resolve_block(self, tag):
        """A block parameter (tag, hex number or EIP-1898 object) -> header, or None."""
        if tag is None:
            tag = "latest"
        if isinstance(tag, dict):
            if "blockHash" in tag:
                h = parse_hash(tag["blockHash"], "blockHash")
                return self.canonical_header_by_hash(h)
            if "blockNumber" in tag:
                return self.resolve_block(tag["blockNumber"])
            raise invalid_params("invalid block parameter object")
        if isinstance(tag, str) and tag in ("latest", "pending", "safe", "finalized"):
            return self.head_header()
        if tag == "earliest":
            return self.chain.get_block_header_by_hash(self.canon[0])
        n = parse_quantity(tag, "block number")
        if n >= len(self.canon):
            return None
        return self.chain.get_block_header_by_hash(self.canon[n])

    def require_block(self, tag):
        header = self.resolve_block(tag)
        if header is None:
            raise RpcError(-32000, "header not found")
        return header

    def canonical_header_by_hash(self, block_hash):
        try:
            header = self.chain.get_block_header_by_hash(block_hash)
        except Exception:
            return None
        n = header.block_number
        if n < len(self.canon) and self.canon[n] == block_hash:
            return header
        return None

    def _wall(self):
        """The wall clock, or 0 with --manual-time (time_offset is then the clock itself)."""
        return 0 if self.manual_time else int(time.time())

    def now(self):
        return self._wall() + self.time_offset

    def _prevrandao(self, parent_hash):
        # Different for every block ever mined, so a block mined after evm_revert never
        # repeats the hash of the block it replaces, even with the same timestamp.
        return keccak(b"parley-devnet-prevrandao" + self.blocks_mined.to_bytes(8, "big") + parent_hash)

    def _pending_header(self, timestamp=None):
        parent = self.head_header()
        if timestamp is None:
            timestamp = self.next_timestamp
        if timestamp is None:
            timestamp = max(parent.timestamp + (0 if self.manual_time else 1), self.now())
        header = self.chain.create_header_from_parent(
            parent,
            timestamp=timestamp,
            gas_limit=parent.gas_limit,
            coinbase=self.coinbase,
            mix_hash=self._prevrandao(parent.hash),
        )
        if self.state_root_override is not None:
            header = header.copy(state_root=self.state_root_override)
        return header

    def next_base_fee(self):
        return self._pending_header().base_fee_per_gas

    def _mine(self, transactions, header=None, forced_timestamp=False):
        if header is None:
            header = self._pending_header()
        parent_number = len(self.canon) - 1
        self.chain.header = header
        result, receipts, computations = self.chain.mine_all(list(transactions))
        block = result.imported_block
        assert block.number == parent_number + 1
        self.canon.append(block.hash)  # (the block is read back from the db when asked for)
        for i, tx in enumerate(block.transactions):
            self.tx_index[tx.hash] = (block.hash, i)
        self.blocks_mined += 1
        self.state_root_override = None
        if self.next_timestamp is not None or forced_timestamp:
            # time goes on from the forced timestamp, as anvil and hardhat do
            self.time_offset = block.header.timestamp - self._wall()
            self.next_timestamp = None
        log.debug("mined block %d (%d txs)", block.number, len(block.transactions))
        return block, receipts, computations

    def _set_head_state(self, mutate):
        head = self.head_header()
        vm = self.chain.get_vm(self.state_header(head))
        mutate(vm.state)
        vm.state.persist()
        self.state_root_override = vm.state.state_root

    # ------------------------------------------------------------ transactions

    def _validate_and_submit(self, tx):
        type_id = tx.type_id if tx.type_id is not None else 0
        if type_id not in (0, 1, 2) and not (type_id == 4 and self.hardfork == "prague"):
            raise tx_error("transaction type not supported")
        # chain id: typed txs carry it; legacy EIP-155 ones encode it in v
        if type_id == 0:
            v = tx.v
            if v >= 35:
                tx_chain = (v - 35) // 2
                if tx_chain != self.chain_id:
                    raise tx_error(f"invalid chain id for signer: have {tx_chain} want {self.chain_id}")
            elif v not in (27, 28):
                raise tx_error("invalid sender: invalid signature v value")
        elif tx.chain_id != self.chain_id:
            raise tx_error(f"invalid chain id for signer: have {tx.chain_id} want {self.chain_id}")
        try:
            tx.check_signature_validity()
            sender = tx.sender
        except Exception as e:  # noqa: BLE001 - any failure to recover is a bad signature
            raise tx_error(f"invalid sender: {e}")
        try:
            tx.validate()
        except VALIDATION_ERRORS as e:
            raise tx_error(f"invalid transaction: {e}")
        except TypeError:
            pass  # some typed validate() signatures differ; py-evm validates again below

        header = self._pending_header()
        state = self.chain.get_vm(header).state
        addr = "0x" + sender.hex()
        state_nonce = state.get_nonce(sender)
        if tx.nonce < state_nonce:
            raise tx_error(f"nonce too low: address {addr}, tx: {tx.nonce} state: {state_nonce}")
        if tx.nonce > state_nonce:
            raise tx_error(f"nonce too high: address {addr}, tx: {tx.nonce} state: {state_nonce}")
        if tx.gas > header.gas_limit:
            raise tx_error("exceeds block gas limit")
        if tx.gas < tx.intrinsic_gas:
            raise tx_error(f"intrinsic gas too low: gas {tx.gas}, minimum needed {tx.intrinsic_gas}")
        if self.hardfork == "prague":
            floor = calldata_floor_gas(tx.data)
            if tx.gas < floor:
                raise tx_error(f"insufficient gas for floor data gas cost: gas {tx.gas}, minimum needed {floor}")
        max_fee = tx.max_fee_per_gas if type_id >= 2 else tx.gas_price
        tip = tx.max_priority_fee_per_gas if type_id >= 2 else tx.gas_price
        if tip > max_fee:
            raise tx_error(
                f"max priority fee per gas higher than max fee per gas: address {addr}, "
                f"maxPriorityFeePerGas: {tip}, maxFeePerGas: {max_fee}")
        if max_fee < header.base_fee_per_gas:
            raise tx_error(
                f"max fee per gas less than block base fee: address {addr}, "
                f"maxFeePerGas: {max_fee}, baseFee: {header.base_fee_per_gas}")
        balance = state.get_balance(sender)
        cost = tx.gas * max_fee + tx.value
        if balance < cost:
            raise tx_error(
                f"insufficient funds for gas * price + value: address {addr} have {balance} want {cost}")
        code = state.get_code(sender)
        if code and not code.startswith(b"\xef\x01\x00"):
            raise tx_error(f"sender not an eoa: address {addr}, codehash: {hb(keccak(code))}")
        try:
            self._mine([tx], header=header)
        except VALIDATION_ERRORS as e:
            raise tx_error(f"invalid transaction: {e}")
        return tx.hash

    def _decode_raw(self, raw):
        if not raw:
            raise tx_error("typed transaction too short")
        builder = self.chain.get_vm().get_transaction_builder()
        try:
            return builder.decode(raw)
        except Exception as e:  # noqa: BLE001 - rlp/type errors of every kind
            if raw[0] < 0x7F and raw[0] not in (1, 2, 4):
                raise tx_error("transaction type not supported")
            raise tx_error(f"rlp: could not decode transaction: {e}")

    # ------------------------------------------------------------ calls & estimates

    def _call_params(self, obj):
        if not isinstance(obj, dict):
            raise invalid_params("transaction argument must be an object")
        p = {}
        p["from"] = parse_address(obj["from"], "from") if obj.get("from") else ZERO_ADDRESS
        p["to"] = parse_address(obj["to"], "to") if obj.get("to") else b""
        p["gas"] = parse_quantity(obj["gas"], "gas") if obj.get("gas") is not None else None
        p["value"] = parse_quantity(obj["value"], "value") if obj.get("value") is not None else 0
        data = obj.get("input")
        if data is None:
            data = obj.get("data")
        elif obj.get("data") is not None and obj["data"] != data:
            raise invalid_params(
                'both "data" and "input" are set and not equal. Please use "input" to pass transaction call data')
        p["data"] = parse_data(data, "input") if data is not None else b""
        for key in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce"):
            p[key] = parse_quantity(obj[key], key) if obj.get(key) is not None else None
        if p["gasPrice"] is not None and (p["maxFeePerGas"] is not None or p["maxPriorityFeePerGas"] is not None):
            raise invalid_params("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
        al = []
        for entry in obj.get("accessList") or []:
            if not isinstance(entry, dict):
                raise invalid_params("invalid accessList entry")
            slots = tuple(int.from_bytes(parse_hash(k, "storageKey"), "big") for k in entry.get("storageKeys") or [])
            al.append((parse_address(entry.get("address"), "accessList address"), slots))
        p["accessList"] = tuple(al)
        return p

    def _fees(self, p):
        """(maxFee, tip) for a call: zero, as geth does, when no fee field is given."""
        if p["gasPrice"] is not None:
            return p["gasPrice"], p["gasPrice"]
        if p["maxFeePerGas"] is None and p["maxPriorityFeePerGas"] is None:
            return 0, 0
        max_fee = p["maxFeePerGas"]
        tip = p["maxPriorityFeePerGas"] if p["maxPriorityFeePerGas"] is not None else 0
        if max_fee is None:
            max_fee = tip  # geth: the cap defaults to the tip when only the tip is given
        if tip > max_fee:
            raise tx_error("max priority fee per gas higher than max fee per gas")
        return max_fee, tip

    def _run_call(self, header, p, gas):
        """Execute a call on a throwaway state after `header`; returns the computation."""
        max_fee, tip = self._fees(p)
        hdr = self.state_header(header)
        if max_fee == 0:
            hdr = hdr.copy(base_fee_per_gas=0)  # geth: no base fee when no gas price is given
        elif max_fee < hdr.base_fee_per_gas:
            raise tx_error(
                f"max fee per gas less than block base fee: address {hb(p['from'])}, "
                f"maxFeePerGas: {max_fee}, baseFee: {hdr.base_fee_per_gas}")
        vm = self.chain.get_vm(hdr)
        state = vm.state
        nonce = state.get_nonce(p["from"])
        unsigned = vm.get_transaction_builder().new_unsigned_dynamic_fee_transaction(
            chain_id=self.chain_id, nonce=nonce, max_priority_fee_per_gas=tip,
            max_fee_per_gas=max_fee, gas=gas, to=p["to"], value=p["value"], data=p["data"],
            access_list=p["accessList"])
        tx = SpoofTransaction(unsigned, from_=p["from"])
        if gas < unsigned.intrinsic_gas:
            raise tx_error(f"intrinsic gas too low: gas {gas}, minimum needed {unsigned.intrinsic_gas}")
        if max_fee:
            have = state.get_balance(p["from"])
            want = gas * max_fee + p["value"]
            if have < want:
                raise tx_error(
                    f"insufficient funds for gas * price + value: address {hb(p['from'])} have {have} want {want}")
        executor = state.get_transaction_executor()
        message = executor.build_evm_message(tx)
        computation = executor.build_computation(message, tx)
        computation = executor.finalize_computation(tx, computation)
        return computation, unsigned

    @staticmethod
    def _raise_for(computation):
        if not computation.is_error:
            return
        err = computation.error
        if isinstance(err, Revert):
            data = err.args[0] if err.args and isinstance(err.args[0], (bytes, bytearray)) else computation.output
            raise revert_error(bytes(data))
        raise tx_error(vm_error_message(err))

    def call(self, obj, tag=None):
        p = self._call_params(obj)
        header = self.require_block(tag)
        gas = p["gas"] if p["gas"] is not None else header.gas_limit
        computation, _ = self._run_call(header, p, gas)
        self._raise_for(computation)
        return computation.output

    def estimate_gas(self, obj, tag=None):
        p = self._call_params(obj)
        header = self.require_block(tag)
        state = self.state_at(header)
        # plain transfer to an account without code: 21000, as geth answers
        if p["to"] and not p["data"] and not state.get_code(p["to"]) and not p["accessList"]:
            comp, _ = self._run_call(header, p, 21000)
            if not comp.is_error:
                return 21000
        cap = p["gas"] if p["gas"] is not None else header.gas_limit
        max_fee, _tip = self._fees(p)
        if max_fee:
            balance = state.get_balance(p["from"])
            if p["value"] > balance:
                raise tx_error("insufficient funds for transfer")
            cap = min(cap, (balance - p["value"]) // max_fee)

        def attempt(gas):
            try:
                comp, unsigned = self._run_call(header, p, gas)
            except RpcError as e:
                if "intrinsic gas too low" in e.message or "floor data gas" in e.message:
                    return False, None
                raise
            return (not comp.is_error), comp

        ok, comp = attempt(cap)
        if comp is None:
            raise tx_error(f"gas required exceeds allowance ({cap})")
        if not ok:
            if isinstance(comp.error, Revert):
                self._raise_for(comp)
            if isinstance(comp.error, OutOfGas):
                raise tx_error(f"gas required exceeds allowance ({cap})")
            self._raise_for(comp)
        before_refund = cap - comp.get_gas_remaining()
        refund = comp.get_gas_refund()
        used = before_refund - min(refund, before_refund // 5)
        floor = calldata_floor_gas(p["data"]) if self.hardfork == "prague" else 0
        lo = max(used, floor) - 1
        hi = cap
        optimistic = (before_refund + refund + 2300) * 64 // 63
        if lo < optimistic < hi:
            good, _ = attempt(optimistic)
            if good:
                hi = optimistic
            else:
                lo = optimistic
        while lo + 1 < hi:
            if (hi - lo) / hi < 0.015:
                break
            mid = (hi + lo) // 2
            if mid > lo * 2:
                mid = lo * 2
            good, _ = attempt(mid)
            if good:
                hi = mid
            else:
                lo = mid
        return hi

    def sign_and_submit(self, obj):
        if not isinstance(obj, dict) or not obj.get("from"):
            raise invalid_params('transaction argument must be an object with "from"')
        sender = parse_address(obj["from"], "from")
        key = self.key_by_address.get(sender)
        if key is None:
            raise tx_error("unknown account")
        p = self._call_params(obj)
        head = self.head_header()
        nonce = p["nonce"] if p["nonce"] is not None else self.state_at(head).get_nonce(sender)
        gas = p["gas"]
        if gas is None:
            est = dict(obj)
            for k in ("gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce"):
                est.pop(k, None)
            gas = self.estimate_gas(est, "latest")
        builder = self.chain.get_vm().get_transaction_builder()
        if p["gasPrice"] is not None:
            unsigned = builder.create_unsigned_transaction(
                nonce=nonce, gas_price=p["gasPrice"], gas=gas, to=p["to"], value=p["value"], data=p["data"])
            tx = unsigned.as_signed_transaction(key, chain_id=self.chain_id)
        else:
            tip = p["maxPriorityFeePerGas"]
            max_fee = p["maxFeePerGas"]
            if tip is None:
                tip = PRIORITY_FEE if max_fee is None else min(PRIORITY_FEE, max_fee)
            if max_fee is None:
                max_fee = 2 * self.next_base_fee() + tip
            unsigned = builder.new_unsigned_dynamic_fee_transaction(
                chain_id=self.chain_id, nonce=nonce, max_priority_fee_per_gas=tip, max_fee_per_gas=max_fee,
                gas=gas, to=p["to"], value=p["value"], data=p["data"], access_list=p["accessList"])
            tx = unsigned.as_signed_transaction(key)
        return self._validate_and_submit(tx)

    # ------------------------------------------------------------ serialization

    def tx_json(self, tx, block=None, index=None):
        type_id = tx.type_id if tx.type_id is not None else 0
        out = {
            "hash": hb(tx.hash),
            "type": hq(type_id),
            "nonce": hq(tx.nonce),
            "blockHash": hb(block.hash) if block else None,
            "blockNumber": hq(block.number) if block else None,
            "transactionIndex": hq(index) if block else None,
            "from": hb(tx.sender),
            "to": ha(tx.to),
            "value": hq(tx.value),
            "gas": hq(tx.gas),
            "input": hb(tx.data),
            "r": hq(tx.r),
            "s": hq(tx.s),
        }
        if type_id == 0:
            out["gasPrice"] = hq(tx.gas_price)
            out["v"] = hq(tx.v)
            if tx.v >= 35:
                out["chainId"] = hq((tx.v - 35) // 2)
        else:
            out["chainId"] = hq(tx.chain_id)
            out["v"] = hq(tx.y_parity)
            out["yParity"] = hq(tx.y_parity)
            out["accessList"] = [
                {"address": hb(a), "storageKeys": [h32(k) for k in slots]} for a, slots in tx.access_list
            ]
            if type_id == 1:
                out["gasPrice"] = hq(tx.gas_price)
            else:
                out["maxFeePerGas"] = hq(tx.max_fee_per_gas)
                out["maxPriorityFeePerGas"] = hq(tx.max_priority_fee_per_gas)
                out["gasPrice"] = hq(effective_gas_price(tx, block.header.base_fee_per_gas)
                                     if block else tx.max_fee_per_gas)
            if type_id == 4:
                out["authorizationList"] = [
                    {"chainId": hq(a.chain_id), "address": hb(a.address), "nonce": hq(a.nonce),
                     "yParity": hq(a.y_parity), "r": hq(a.r), "s": hq(a.s)}
                    for a in tx.authorization_list
                ]
        return out

    def block_json(self, block, full):
        h = block.header
        if full:
            txs = [self.tx_json(tx, block, i) for i, tx in enumerate(block.transactions)]
        else:
            txs = [hb(tx.hash) for tx in block.transactions]
        out = {
            "number": hq(h.block_number),
            "hash": hb(h.hash),
            "parentHash": hb(h.parent_hash),
            "nonce": hb(h.nonce),
            "mixHash": hb(h.mix_hash),
            "sha3Uncles": hb(h.uncles_hash),
            "logsBloom": hb(int(h.bloom).to_bytes(256, "big")),
            "transactionsRoot": hb(h.transaction_root),
            "stateRoot": hb(h.state_root),
            "receiptsRoot": hb(h.receipt_root),
            "miner": hb(h.coinbase),
            "difficulty": hq(h.difficulty),
            "totalDifficulty": "0x0",
            "extraData": hb(h.extra_data),
            "size": hq(len(rlp.encode(block))),
            "gasLimit": hq(h.gas_limit),
            "gasUsed": hq(h.gas_used),
            "timestamp": hq(h.timestamp),
            "transactions": txs,
            "uncles": [],
            "baseFeePerGas": hq(h.base_fee_per_gas),
            "withdrawals": [],
            "withdrawalsRoot": hb(h.withdrawals_root),
            "blobGasUsed": hq(h.blob_gas_used),
            "excessBlobGas": hq(h.excess_blob_gas),
            "parentBeaconBlockRoot": hb(h.parent_beacon_block_root),
        }
        requests_hash = getattr(h, "requests_hash", None)
        if self.hardfork == "prague" and requests_hash is not None:
            out["requestsHash"] = hb(requests_hash)
        return out

    def block_logs(self, block):
        """Every log of a block as JSON, logIndex counted within the block."""
        out = []
        if not block.transactions:
            return out
        receipts = self.get_receipts(block)
        log_index = 0
        for i, (tx, receipt) in enumerate(zip(block.transactions, receipts)):
            for entry in receipt.logs:
                out.append({
                    "address": hb(entry.address),
                    "topics": [h32(t) for t in entry.topics],
                    "data": hb(entry.data),
                    "blockNumber": hq(block.number),
                    "blockHash": hb(block.hash),
                    "blockTimestamp": hq(block.header.timestamp),
                    "transactionHash": hb(tx.hash),
                    "transactionIndex": hq(i),
                    "logIndex": hq(log_index),
                    "removed": False,
                })
                log_index += 1
        return out

    def receipt_json(self, block, index):
        tx = block.transactions[index]
        receipts = self.get_receipts(block)
        receipt = receipts[index]
        previous = receipts[index - 1].gas_used if index > 0 else 0
        type_id = tx.type_id if tx.type_id is not None else 0
        contract = None
        if not tx.to:
            contract = hb(generate_contract_address(tx.sender, tx.nonce))
        logs = [entry for entry in self.block_logs(block) if entry["transactionIndex"] == hq(index)]
        return {
            "transactionHash": hb(tx.hash),
            "transactionIndex": hq(index),
            "blockHash": hb(block.hash),
            "blockNumber": hq(block.number),
            "from": hb(tx.sender),
            "to": ha(tx.to),
            "cumulativeGasUsed": hq(receipt.gas_used),
            "gasUsed": hq(receipt.gas_used - previous),
            "effectiveGasPrice": hq(effective_gas_price(tx, block.header.base_fee_per_gas)),
            "contractAddress": contract,
            "logs": logs,
            "logsBloom": hb(int(receipt.bloom).to_bytes(256, "big")),
            "type": hq(type_id),
            "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
        }

    def find_tx(self, tx_hash):
        entry = self.tx_index.get(tx_hash)
        if entry is None:
            return None
        block_hash, index = entry
        header = self.canonical_header_by_hash(block_hash)
        if header is None:
            return None  # dropped by evm_revert
        return self.get_block(block_hash), index

    # ------------------------------------------------------------ RPC methods

    def rpc_web3_clientVersion(self):
        return VERSION

    def rpc_web3_sha3(self, data):
        return hb(keccak(parse_data(data)))

    def rpc_net_version(self):
        return str(self.chain_id)

    def rpc_net_listening(self):
        return True

    def rpc_net_peerCount(self):
        return "0x0"

    def rpc_eth_chainId(self):
        return hq(self.chain_id)

    def rpc_eth_syncing(self):
        return False

    def rpc_eth_mining(self):
        return True

    def rpc_eth_coinbase(self):
        return hb(self.coinbase)

    def rpc_eth_blockNumber(self):
        return hq(len(self.canon) - 1)

    def rpc_eth_accounts(self):
        return [hb(a) for a in self.key_by_address]

    def rpc_eth_getBlockByNumber(self, tag, full=False):
        full = parse_bool(full, "fullTx")
        header = self.resolve_block(tag)
        if header is None:
            return None
        return self.block_json(self.get_block(header.hash), full)

    def rpc_eth_getBlockByHash(self, block_hash, full=False):
        full = parse_bool(full, "fullTx")
        header = self.canonical_header_by_hash(parse_hash(block_hash, "block hash"))
        if header is None:
            return None
        return self.block_json(self.get_block(header.hash), full)

    def rpc_eth_getBlockTransactionCountByNumber(self, tag):
        header = self.resolve_block(tag)
        return None if header is None else hq(len(self.get_block(header.hash).transactions))

    def rpc_eth_getBlockTransactionCountByHash(self, block_hash):
        header = self.canonical_header_by_hash(parse_hash(block_hash, "block hash"))
        return None if header is None else hq(len(self.get_block(header.hash).transactions))

    def rpc_eth_getBlockReceipts(self, tag):
        header = self.resolve_block(tag)
        if header is None:
            return None
        block = self.get_block(header.hash)
        return [self.receipt_json(block, i) for i in range(len(block.transactions))]

    def rpc_eth_getBalance(self, address, tag="latest"):
        return hq(self.state_at(self.require_block(tag)).get_balance(parse_address(address)))

    def rpc_eth_getTransactionCount(self, address, tag="latest"):
        return hq(self.state_at(self.require_block(tag)).get_nonce(parse_address(address)))

    def rpc_eth_getCode(self, address, tag="latest"):
        return hb(self.state_at(self.require_block(tag)).get_code(parse_address(address)))

    def rpc_eth_getStorageAt(self, address, slot, tag="latest"):
        if isinstance(slot, str) and len(slot) == 66:
            key = int.from_bytes(parse_hash(slot, "storage slot"), "big")
        else:
            key = parse_quantity(slot, "storage slot")
        if key >= 2**256:
            raise invalid_params("invalid storage slot")
        return h32(self.state_at(self.require_block(tag)).get_storage(parse_address(address), key))

    def rpc_eth_call(self, obj, tag="latest", overrides=None):
        if overrides:
            raise invalid_params("state overrides are not supported by this devnet")
        return hb(self.call(obj, tag))

    def rpc_eth_estimateGas(self, obj, tag="latest", overrides=None):
        if overrides:
            raise invalid_params("state overrides are not supported by this devnet")
        return hq(self.estimate_gas(obj, tag))

    def rpc_eth_gasPrice(self):
        return hq(self.next_base_fee() + PRIORITY_FEE)

    def rpc_eth_maxPriorityFeePerGas(self):
        return hq(PRIORITY_FEE)

    def rpc_eth_blobBaseFee(self):
        return hq(self.chain.get_vm(self._pending_header()).state.blob_base_fee)

    def rpc_eth_feeHistory(self, block_count, newest="latest", percentiles=None):
        count = parse_quantity(block_count, "blockCount")
        if count < 1:
            return {"oldestBlock": "0x0", "baseFeePerGas": [], "gasUsedRatio": [], "reward": []}
        count = min(count, 1024)
        newest_header = self.require_block(newest)
        if percentiles is not None:
            if not isinstance(percentiles, list) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 100 for x in percentiles):
                raise invalid_params("invalid reward percentiles")
            if any(b < a for a, b in zip(percentiles, percentiles[1:])):
                raise invalid_params("reward percentiles must be increasing")
        newest_n = newest_header.block_number
        oldest_n = max(0, newest_n - count + 1)
        base_fees, ratios, blob_fees, blob_ratios, rewards = [], [], [], [], []
        for n in range(oldest_n, newest_n + 1):
            h = self.chain.get_block_header_by_hash(self.canon[n])
            base_fees.append(hq(h.base_fee_per_gas))
            ratios.append(h.gas_used / h.gas_limit if h.gas_limit else 0.0)
            blob_fees.append(hq(self.chain.get_vm(h).state.blob_base_fee))
            blob_ratios.append(0.0)
            if percentiles is not None:
                rewards.append([hq(PRIORITY_FEE) for _ in percentiles])
        # one more base fee: the block after newest
        if newest_n == len(self.canon) - 1:
            nxt = self._pending_header()
        else:
            nxt = self.chain.get_block_header_by_hash(self.canon[newest_n + 1])
        base_fees.append(hq(nxt.base_fee_per_gas))
        blob_fees.append(hq(self.chain.get_vm(nxt).state.blob_base_fee))
        out = {
            "oldestBlock": hq(oldest_n),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
            "baseFeePerBlobGas": blob_fees,
            "blobGasUsedRatio": blob_ratios,
        }
        if percentiles is not None:
            out["reward"] = rewards
        return out

    def rpc_eth_sendRawTransaction(self, raw):
        tx = self._decode_raw(parse_data(raw, "raw transaction"))
        return hb(self._validate_and_submit(tx))

    def rpc_eth_sendTransaction(self, obj):
        return hb(self.sign_and_submit(obj))

    def rpc_eth_getTransactionByHash(self, tx_hash):
        found = self.find_tx(parse_hash(tx_hash, "transaction hash"))
        if found is None:
            return None
        block, index = found
        return self.tx_json(block.transactions[index], block, index)

    def rpc_eth_getTransactionByBlockNumberAndIndex(self, tag, index):
        header = self.resolve_block(tag)
        i = parse_quantity(index, "index")
        if header is None:
            return None
        block = self.get_block(header.hash)
        return self.tx_json(block.transactions[i], block, i) if i < len(block.transactions) else None

    def rpc_eth_getTransactionByBlockHashAndIndex(self, block_hash, index):
        header = self.canonical_header_by_hash(parse_hash(block_hash, "block hash"))
        i = parse_quantity(index, "index")
        if header is None:
            return None
        block = self.get_block(header.hash)
        return self.tx_json(block.transactions[i], block, i) if i < len(block.transactions) else None

    def rpc_eth_getTransactionReceipt(self, tx_hash):
        found = self.find_tx(parse_hash(tx_hash, "transaction hash"))
        if found is None:
            return None
        return self.receipt_json(*found)

    def rpc_eth_getLogs(self, flt=None):
        if flt is None:
            flt = {}
        if not isinstance(flt, dict):
            raise invalid_params("filter must be an object")
        addresses = flt.get("address")
        if addresses is None:
            addresses = []
        elif isinstance(addresses, str):
            addresses = [addresses]
        elif not isinstance(addresses, list):
            raise invalid_params("invalid address filter")
        address_set = {hb(parse_address(a)) for a in addresses}
        topics = flt.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 4:
            raise invalid_params("invalid topics filter")
        topic_sets = []
        for t in topics:
            if t is None:
                topic_sets.append(None)
            elif isinstance(t, str):
                topic_sets.append({hb(parse_hash(t, "topic"))})
            elif isinstance(t, list):
                if any(x is None for x in t) or not t:
                    topic_sets.append(None)
                else:
                    topic_sets.append({hb(parse_hash(x, "topic")) for x in t})
            else:
                raise invalid_params("invalid topic")
        if flt.get("blockHash") is not None:
            if flt.get("fromBlock") is not None or flt.get("toBlock") is not None:
                raise invalid_params("cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other")
            header = self.canonical_header_by_hash(parse_hash(flt["blockHash"], "blockHash"))
            if header is None:
                raise RpcError(-32000, "unknown block")
            numbers = [header.block_number]
        else:
            head = len(self.canon) - 1
            frm = self.resolve_block(flt.get("fromBlock", "latest"))
            to = self.resolve_block(flt.get("toBlock", "latest"))
            lo = frm.block_number if frm is not None else head + 1
            hi = to.block_number if to is not None else head
            if frm is not None and to is not None and lo > hi:
                raise RpcError(-32000, "invalid block range params")
            numbers = range(lo, min(hi, head) + 1)
        out = []
        for n in numbers:
            block = self.get_block(self.canon[n])
            for entry in self.block_logs(block):
                if address_set and entry["address"] not in address_set:
                    continue
                if len(topic_sets) > len(entry["topics"]):
                    continue
                if all(s is None or entry["topics"][i] in s for i, s in enumerate(topic_sets)):
                    out.append(entry)
        return out

    # dev methods -------------------------------------------------------------

    MAX_MINE = 100_000  # blocks per evm_mine / anvil_mine call
    MAX_TIMESTAMP = 2**63  # keeps every later header timestamp a valid uint64

    def _timestamp(self, v):
        ts = parse_quantity(v, "timestamp")
        if ts >= self.MAX_TIMESTAMP:
            raise invalid_params("timestamp too large")
        return ts

    def _block_count(self, v):
        n = parse_quantity(v, "blocks")
        if n > self.MAX_MINE:
            raise invalid_params(f"too many blocks (at most {self.MAX_MINE} per call)")
        return n

    def rpc_evm_mine(self, arg=None):
        timestamp, blocks = None, 1
        if isinstance(arg, dict):
            if arg.get("timestamp") is not None:
                timestamp = self._timestamp(arg["timestamp"])
            if arg.get("blocks") is not None:
                blocks = self._block_count(arg["blocks"])
        elif arg is not None:
            timestamp = self._timestamp(arg)
        for i in range(blocks):
            if i == 0 and timestamp is not None:
                head = self.head_header()
                if timestamp < head.timestamp or (timestamp == head.timestamp and not self.manual_time):
                    raise tx_error(
                        f"timestamp must be greater than the latest block's ({head.timestamp}), got {timestamp}")
                self._mine([], header=self._pending_header(timestamp), forced_timestamp=True)
            else:
                self._mine([])
        return "0x0"

    def rpc_anvil_mine(self, blocks=None, interval=None):
        n = 1 if blocks is None else self._block_count(blocks)
        step = None if interval is None else self._timestamp(interval)
        for _ in range(n):
            if step is None:
                self._mine([])
            else:
                ts = self.head_header().timestamp + max(1, step)
                self._mine([], header=self._pending_header(ts), forced_timestamp=True)
        return None

    rpc_hardhat_mine = rpc_anvil_mine

    def rpc_evm_increaseTime(self, seconds):
        n = parse_quantity(seconds, "seconds")
        if self.now() + n >= self.MAX_TIMESTAMP // 2:
            raise invalid_params("time increase too large")
        # the next block is at least `n` seconds after the latest one, even when automine
        # has pushed block timestamps ahead of the wall clock
        head_ts = self.head_header().timestamp
        self.time_offset = max(self.time_offset + n, head_ts + n - self._wall())
        return self.time_offset

    def rpc_evm_setNextBlockTimestamp(self, timestamp):
        ts = self._timestamp(timestamp)
        head = self.head_header()
        if ts < head.timestamp or (ts == head.timestamp and not self.manual_time):
            raise tx_error(f"timestamp must be greater than the latest block's ({head.timestamp}), got {ts}")
        self.next_timestamp = ts
        return None

    rpc_anvil_setNextBlockTimestamp = rpc_evm_setNextBlockTimestamp

    def rpc_evm_snapshot(self):
        self.snapshot_counter += 1
        self.snapshots[self.snapshot_counter] = (
            self.canon[-1], self.time_offset, self.next_timestamp, self.state_root_override)
        return hq(self.snapshot_counter)

    def rpc_evm_revert(self, snap_id):
        sid = parse_quantity(snap_id, "snapshot id")
        snap = self.snapshots.get(sid)
        if snap is None:
            return False
        head_hash, offset, next_ts, override = snap
        header = self.chain.get_block_header_by_hash(head_hash)
        n = header.block_number
        if n >= len(self.canon) or self.canon[n] != head_hash:
            return False  # not on the canonical chain any more (cannot happen: later snapshots are dropped)
        dropped = len(self.canon) - 1 - n
        chaindb = self.chain.chaindb
        # Make the snapshot's block py-evm's head again (as eth-tester's revert does). py-evm
        # keeps its number->hash entries above it until new blocks overwrite them: every
        # number lookup here goes through self.canon instead, and BLOCKHASH walks parents.
        chaindb._set_as_canonical_chain_head(chaindb.db, header, GENESIS_PARENT_HASH)
        del self.canon[n + 1:]
        self.chain.header = self.chain.create_header_from_parent(header)
        self.time_offset, self.next_timestamp, self.state_root_override = offset, next_ts, override
        for k in [k for k in self.snapshots if k >= sid]:
            del self.snapshots[k]
        log.debug("reverted to snapshot %d: block %d, %d blocks dropped", sid, n, dropped)
        return True

    def rpc_anvil_setBalance(self, address, value):
        addr = parse_address(address)
        wei = parse_quantity(value, "balance")
        self._set_head_state(lambda s: s.set_balance(addr, wei))
        return True

    rpc_hardhat_setBalance = rpc_anvil_setBalance

    def rpc_anvil_setCode(self, address, code):
        addr, data = parse_address(address), parse_data(code, "code")
        self._set_head_state(lambda s: s.set_code(addr, data))
        return True

    rpc_hardhat_setCode = rpc_anvil_setCode

    def rpc_anvil_setNonce(self, address, nonce):
        addr, n = parse_address(address), parse_quantity(nonce, "nonce")
        self._set_head_state(lambda s: s.set_nonce(addr, n))
        return True

    rpc_hardhat_setNonce = rpc_anvil_setNonce

    def rpc_anvil_setStorageAt(self, address, slot, value):
        addr = parse_address(address)
        key = parse_quantity(slot, "slot")
        val = int.from_bytes(parse_data(value, "value"), "big") if isinstance(value, str) and len(value) == 66 \
            else parse_quantity(value, "value")
        self._set_head_state(lambda s: s.set_storage(addr, key, val))
        return True

    rpc_hardhat_setStorageAt = rpc_anvil_setStorageAt

    # ------------------------------------------------------------ dispatch

    def handle(self, req):
        """One JSON-RPC request object -> one response object."""
        if not isinstance(req, dict):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        rid = req.get("id")
        if isinstance(rid, (dict, list)):
            rid = None
        method = req.get("method")
        params = req.get("params", [])
        try:
            if req.get("jsonrpc", "2.0") != "2.0" or not isinstance(method, str):
                raise RpcError(-32600, "invalid request")
            fn = getattr(self, "rpc_" + method, None) if method.replace("_", "").isalnum() else None
            if fn is None:
                raise RpcError(-32601, f"the method {method} does not exist/is not available")
            if params is None:
                params = []
            if not isinstance(params, list):
                raise invalid_params("params must be an array")
            max_args = fn.__func__.__code__.co_argcount - 1
            min_args = max_args - len(fn.__func__.__defaults__ or ())
            if len(params) > max_args:
                raise invalid_params(f"too many arguments, want at most {max_args}")
            if len(params) < min_args:
                raise invalid_params(f"missing value for required argument {len(params)}")
            with self.lock:
                result = fn(*params)
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        except RpcError as e:
            return {"jsonrpc": "2.0", "id": rid, "error": e.to_json()}
        except VALIDATION_ERRORS as e:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": str(e)}}
        except Exception as e:  # noqa: BLE001 - a bad request never kills the server
            log.exception("internal error in %s", method)
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": f"internal error: {e}"}}

    def handle_body(self, body):
        """Raw HTTP body -> JSON-serializable response (object or array)."""
        try:
            text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
            if json_depth(text) > MAX_JSON_DEPTH:
                # py-evm raises the recursion limit for deep EVM calls, so a deeply nested
                # body would overflow the C stack inside json.loads: refuse it first
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
            payload = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {e}"}}
        if isinstance(payload, list):
            if not payload:
                return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}}
            return [self.handle(item) for item in payload]
        return self.handle(payload)

    def mine_interval_block(self):
        with self.lock:
            self._mine([])


MAX_JSON_DEPTH = 256
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text):
    depth = deepest = 0
    for ch in _JSON_BRACKETS.findall(_JSON_STRING.sub('""', text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def effective_gas_price(tx, base_fee):
    type_id = tx.type_id if tx.type_id is not None else 0
    if type_id >= 2:
        return min(tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas)
    return tx.gas_price


def calldata_floor_gas(data):
    zeros = data.count(0)
    tokens = zeros + (len(data) - zeros) * 4
    return 21000 + 10 * tokens


# --------------------------------------------------------------------------- HTTP


MAX_BODY = 32 * 1024 * 1024
THREAD_STACK_SIZE = 256 * 1024 * 1024  # virtual: pages are only used when touched


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "parley-evm-devnet"
    devnet = None  # set on the class by serve()
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("devnet: %s - %s\n" % (self.address_string(), fmt % args))

    def _send(self, status, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client went away
            self.close_connection = True

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def do_POST(self):
        try:
            body = self._read_body()
        except (ValueError, OSError) as e:
            self.close_connection = True
            self._send(413 if "too large" in str(e) else 400,
                       {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {e}"}})
            return
        try:
            answer = self.devnet.handle_body(body)
            json.dumps(answer)  # never answer half a body
        except Exception as e:  # noqa: BLE001 - a bad request never kills the server
            log.exception("internal error")
            answer = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": f"internal error: {e}"}}
        self._send(200, answer)

    def do_GET(self):
        self._send(405, {"jsonrpc": "2.0", "id": None,
                         "error": {"code": -32600, "message": "use HTTP POST with a JSON-RPC body"}})

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Length", "0")
        self.end_headers()


class DevnetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class DevnetHTTPServer6(DevnetHTTPServer):
    address_family = socket.AF_INET6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the JSON line)")
    ap.add_argument("--chain-id", type=int, default=1337)
    ap.add_argument("--accounts", type=int, default=10)
    ap.add_argument("--balance-eth", type=int, default=1_000_000)
    ap.add_argument("--block-time", type=float, default=0.0,
                    help="also mine an empty block every SECONDS of wall time (0: only automine)")
    ap.add_argument("--start-time", type=int, default=None, help="genesis timestamp (UNIX seconds)")
    ap.add_argument("--manual-time", action="store_true",
                    help="block time moves only on evm_increaseTime/evm_mine(ts); blocks may share a timestamp")
    ap.add_argument("--gas-limit", type=int, default=DEFAULT_GAS_LIMIT)
    ap.add_argument("--hardfork", choices=sorted(HARDFORKS), default="prague")
    ap.add_argument("--stop-on-eof", action="store_true", help="exit when stdin reaches EOF")
    ap.add_argument("-v", "--verbose", action="store_true", help="log requests and blocks to stderr")
    args = ap.parse_args(argv)
    if args.chain_id <= 0 or args.accounts < 0 or args.balance_eth < 0 or args.block_time < 0:
        ap.error("chain id must be positive; accounts, balance and block time must not be negative")

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="devnet: %(message)s")
    logging.getLogger("eth").setLevel(logging.WARNING)

    # py-evm recurses deeply (1024 nested EVM calls); give every thread a stack to match
    threading.stack_size(THREAD_STACK_SIZE)
    devnet = Devnet(chain_id=args.chain_id, accounts=args.accounts, balance_wei=args.balance_eth * 10**18,
                    start_time=args.start_time, hardfork=args.hardfork, gas_limit=args.gas_limit,
                    manual_time=args.manual_time)
    Handler.devnet = devnet
    Handler.verbose = args.verbose
    server_class = DevnetHTTPServer6 if ":" in args.host else DevnetHTTPServer
    server = server_class((args.host, args.port), Handler)
    port = server.server_address[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     name="http", daemon=True).start()

    if args.stop_on_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(65536):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()

    if args.block_time > 0:
        def interval_miner():
            while not stop.wait(args.block_time):
                try:
                    devnet.mine_interval_block()
                except Exception:  # noqa: BLE001
                    log.exception("interval mining failed")
        threading.Thread(target=interval_miner, name="block-time", daemon=True).start()

    line = {
        "rpc": f"http://{host}:{port}",
        "chainId": args.chain_id,
        "accounts": [
            {"address": to_checksum_address(k.public_key.to_canonical_address()), "privateKey": hb(k.to_bytes())}
            for k in devnet.keys
        ],
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    log.info("listening on %s (chain id %d, %s)", line["rpc"], args.chain_id, args.hardfork)

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
