#!/usr/bin/env python3
"""End-to-end self-test of devnet.py over HTTP: exits non-zero on the first failure.

Starts devnet.py as a subprocess on port 0, reads its JSON line, and exercises every
method over JSON-RPC with urllib: a contract deployed from raw bytecode by a signed
EIP-1559 raw transaction, reverts (code 3 + data), a reverted transaction still mined,
transaction validation errors, logs filtering, time travel, snapshot/revert, batches,
--block-time, SIGTERM and --stop-on-eof.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from eth_account import Account
from eth_utils import keccak, to_checksum_address

HERE = os.path.dirname(os.path.abspath(__file__))
DEVNET = os.path.join(HERE, "devnet.py")
CHAIN_ID = 4242
GWEI = 10**9

# ----------------------------------------------------------------- a tiny contract
# Runtime dispatches on the first calldata byte:
#   01 -> return CHAINID          02 -> return TIMESTAMP        05 -> return NUMBER
#   03 -> revert Error("nope")
#   04 x:32 d:32 t:32 -> sstore(0, x); log2(data=d, topics=[t, x])
OP = {
    "STOP": 0x00, "EQ": 0x14, "SHR": 0x1C, "TIMESTAMP": 0x42, "NUMBER": 0x43, "CHAINID": 0x46,
    "CALLDATALOAD": 0x35, "CODECOPY": 0x39, "MSTORE": 0x52, "SSTORE": 0x55, "JUMP": 0x56,
    "JUMPI": 0x57, "JUMPDEST": 0x5B, "PUSH0": 0x5F, "DUP1": 0x80, "LOG2": 0xA2, "RETURN": 0xF3,
    "REVERT": 0xFD,
}


def assemble(program):
    """program: list of opcode names, ("PUSH", bytes), ("LABEL", name), ("REF", name)."""
    labels, pc = {}, 0
    for item in program:
        if isinstance(item, tuple) and item[0] == "LABEL":
            labels[item[1]] = pc  # a JUMPDEST
            pc += 1
        elif isinstance(item, tuple) and item[0] == "PUSH":
            pc += 1 + len(item[1])
        elif isinstance(item, tuple) and item[0] == "REF":
            pc += 3
        else:
            pc += 1
    code = bytearray()
    for item in program:
        if isinstance(item, tuple) and item[0] == "LABEL":
            code.append(OP["JUMPDEST"])
        elif isinstance(item, tuple) and item[0] == "PUSH":
            code.append(0x5F + len(item[1]))
            code += item[1]
        elif isinstance(item, tuple) and item[0] == "REF":
            code.append(0x61)
            code += labels[item[1]].to_bytes(2, "big")
        else:
            code.append(OP[item])
    return bytes(code)


def p1(n):
    return ("PUSH", bytes([n]))


ERROR_NOPE = bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + (4).to_bytes(32, "big") + b"nope".ljust(32, b"\0")
RUNTIME = assemble([
    "PUSH0", "CALLDATALOAD", p1(0xF8), "SHR",
    "DUP1", p1(1), "EQ", ("REF", "chainid"), "JUMPI",
    "DUP1", p1(2), "EQ", ("REF", "ts"), "JUMPI",
    "DUP1", p1(3), "EQ", ("REF", "rev"), "JUMPI",
    "DUP1", p1(4), "EQ", ("REF", "log"), "JUMPI",
    "DUP1", p1(5), "EQ", ("REF", "num"), "JUMPI",
    "STOP",
    ("LABEL", "chainid"), "CHAINID", ("REF", "ret"), "JUMP",
    ("LABEL", "ts"), "TIMESTAMP", ("REF", "ret"), "JUMP",
    ("LABEL", "num"), "NUMBER", ("REF", "ret"), "JUMP",
    ("LABEL", "ret"), "PUSH0", "MSTORE", p1(32), "PUSH0", "RETURN",
    ("LABEL", "rev"),
    ("PUSH", ERROR_NOPE[0:32]), "PUSH0", "MSTORE",
    ("PUSH", ERROR_NOPE[32:64]), p1(32), "MSTORE",
    ("PUSH", ERROR_NOPE[64:96]), p1(64), "MSTORE",
    ("PUSH", ERROR_NOPE[96:100].ljust(32, b"\0")), p1(96), "MSTORE",
    p1(100), "PUSH0", "REVERT",
    ("LABEL", "log"),
    p1(1), "CALLDATALOAD", "DUP1", "PUSH0", "SSTORE",
    p1(33), "CALLDATALOAD", "PUSH0", "MSTORE",
    p1(65), "CALLDATALOAD", p1(32), "PUSH0", "LOG2", "STOP",
])
# init code: copy the runtime after this 10-byte prefix to memory and return it
INIT = bytes([0x61]) + len(RUNTIME).to_bytes(2, "big") + bytes([0x80, 0x60, 10, 0x5F, 0x39, 0x5F, 0xF3]) + RUNTIME


# ----------------------------------------------------------------- harness

class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Client:
    def __init__(self, url):
        self.url = url
        self.next_id = 0

    def post(self, payload):
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            return json.loads(resp.read())

    def raw(self, method, *params):
        self.next_id += 1
        return self.post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(params)})

    def __call__(self, method, *params):
        resp = self.raw(method, *params)
        if "error" in resp:
            raise Failure(f"{method}{params!r} failed: {resp['error']}")
        return resp["result"]

    def error(self, method, *params):
        resp = self.raw(method, *params)
        if "error" not in resp:
            raise Failure(f"{method} should have failed, got {resp.get('result')!r}")
        return resp["error"]


def start(*args):
    proc = subprocess.Popen([sys.executable, DEVNET, "--port", "0", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = {}

    def read_line():
        line["text"] = proc.stdout.readline()

    reader = threading.Thread(target=read_line, daemon=True)
    reader.start()
    reader.join(15)
    text = line.get("text")
    if not text:
        proc.kill()
        raise Failure(f"devnet did not print its JSON line; stderr: {proc.stderr.read().decode()[-2000:]}")
    return proc, json.loads(text)


def wait_exit(proc, seconds=5):
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure("devnet did not exit")


def sign(key, chain_id=CHAIN_ID, **fields):
    tx = {"type": 2, "chainId": chain_id, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 3 * GWEI,
          "gas": 200_000, "value": 0, "data": b""}
    tx.update(fields)
    if "to" in tx:
        tx["to"] = to_checksum_address(tx["to"])
    return "0x" + Account.sign_transaction(tx, key).raw_transaction.hex().removeprefix("0x")


def word(n):
    return int(n).to_bytes(32, "big")


# ----------------------------------------------------------------- the test

def main_checks(rpc, info):
    accounts = info["accounts"]
    check(len(accounts) == 3, "three accounts")
    a0, a1 = accounts[0], accounts[1]
    k0 = a0["privateKey"]
    check(Account.from_key(k0).address == a0["address"], "private key matches address")
    check(a0["address"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "deterministic (anvil) account 0")

    check(rpc("web3_clientVersion").startswith("parley-evm-devnet"), "web3_clientVersion")
    check(rpc("net_version") == str(CHAIN_ID), "net_version")
    check(rpc("eth_chainId") == hex(CHAIN_ID), "eth_chainId")
    check(rpc("eth_blockNumber") == "0x0", "fresh chain at block 0")
    check([a.lower() for a in rpc("eth_accounts")] == [a["address"].lower() for a in accounts], "eth_accounts")
    check(int(rpc("eth_getBalance", a0["address"], "latest"), 16) == 1000 * 10**18, "prefunded balance")
    check(rpc("eth_getTransactionCount", a0["address"], "pending") == "0x0", "nonce 0")
    genesis = rpc("eth_getBlockByNumber", "earliest", False)
    check(genesis["number"] == "0x0" and genesis["baseFeePerGas"] == hex(GWEI), "genesis base fee 1 gwei")
    check(rpc("eth_getBlockByNumber", "0x99", False) is None, "unknown block -> null")
    check(rpc("eth_getBlockByHash", "0x" + "ab" * 32, False) is None, "unknown hash -> null")
    check(rpc("eth_getTransactionReceipt", "0x" + "ab" * 32) is None, "unknown receipt -> null")
    check(int(rpc("eth_maxPriorityFeePerGas"), 16) == GWEI, "eth_maxPriorityFeePerGas")
    check(int(rpc("eth_gasPrice"), 16) > GWEI, "eth_gasPrice")

    # deploy from raw bytecode with a signed EIP-1559 raw transaction
    tx_hash = rpc("eth_sendRawTransaction", sign(k0, nonce=0, data=INIT))
    receipt = rpc("eth_getTransactionReceipt", tx_hash)
    check(receipt and receipt["status"] == "0x1", f"deploy receipt status: {receipt}")
    contract = receipt["contractAddress"]
    expected_addr = "0x" + keccak(bytes.fromhex("d694") + bytes.fromhex(a0["address"][2:]) + b"\x80")[12:].hex()
    check(contract == expected_addr, "contractAddress = keccak(rlp(sender, 0))")
    for field in ("transactionHash", "blockHash", "blockNumber", "gasUsed", "effectiveGasPrice",
                  "cumulativeGasUsed", "logs", "from", "to", "type", "transactionIndex"):
        check(field in receipt, f"receipt field {field}")
    check(receipt["type"] == "0x2" and receipt["to"] is None and receipt["blockNumber"] == "0x1", "receipt shape")
    check(rpc("eth_getCode", contract, "latest") == "0x" + RUNTIME.hex(), "deployed runtime code")
    check(rpc("eth_getCode", contract, "0x0") == "0x", "no code at genesis")
    block1 = rpc("eth_getBlockByNumber", "0x1", True)
    check(block1["transactions"][0]["hash"] == tx_hash, "block has the tx object")
    check(rpc("eth_getBlockByHash", block1["hash"], False)["transactions"] == [tx_hash], "getBlockByHash")
    for tag in ("latest", "pending", "safe", "finalized"):
        check(rpc("eth_getBlockByNumber", tag, False)["hash"] == block1["hash"], f"tag {tag}")
    for field in ("parentHash", "timestamp", "gasLimit", "gasUsed", "miner", "logsBloom", "stateRoot", "size"):
        check(field in block1, f"block field {field}")
    tx = rpc("eth_getTransactionByHash", tx_hash)
    check(tx["from"].lower() == a0["address"].lower() and tx["blockNumber"] == "0x1" and tx["nonce"] == "0x0",
          "eth_getTransactionByHash")
    gas_used = int(receipt["gasUsed"], 16)
    check(21000 < gas_used < 200_000, "real gas accounting")
    base1 = int(block1["baseFeePerGas"], 16)
    check(int(receipt["effectiveGasPrice"], 16) == base1 + GWEI, "effectiveGasPrice = base fee + tip")

    # CHAINID opcode sees --chain-id; calls and reverts
    check(int(rpc("eth_call", {"to": contract, "data": "0x01"}, "latest"), 16) == CHAIN_ID, "CHAINID opcode")
    check(int(rpc("eth_call", {"to": contract, "input": "0x05"}), 16) == 1, "NUMBER in eth_call at latest")
    err = rpc.error("eth_call", {"to": contract, "data": "0x03"}, "latest")
    check(err["code"] == 3 and err["message"] == "execution reverted: nope", f"revert error: {err}")
    check(err["data"] == "0x" + ERROR_NOPE.hex(), f"revert data: {err}")
    err = rpc.error("eth_estimateGas", {"from": a0["address"], "to": contract, "data": "0x03"})
    check(err["code"] == 3 and err["data"] == "0x" + ERROR_NOPE.hex(), f"estimateGas revert: {err}")

    # a transaction that reverts is still mined, with status 0
    failing = rpc("eth_sendRawTransaction", sign(k0, nonce=1, to=contract, data=b"\x03", gas=60_000))
    r = rpc("eth_getTransactionReceipt", failing)
    check(r["status"] == "0x0" and r["blockNumber"] == "0x2", f"reverted tx mined with status 0: {r}")
    check(rpc("eth_getTransactionCount", a0["address"], "latest") == "0x2", "nonce advanced by failed tx")

    # transaction validation errors (-32000)
    e = rpc.error("eth_sendRawTransaction", sign(k0, nonce=1, to=contract))
    check(e["code"] == -32000 and "nonce too low" in e["message"], f"nonce too low: {e}")
    e = rpc.error("eth_sendRawTransaction", sign(k0, nonce=9, to=contract))
    check(e["code"] == -32000 and "nonce too high" in e["message"], f"nonce too high: {e}")
    e = rpc.error("eth_sendRawTransaction", sign(k0, chain_id=1, nonce=2, to=contract))
    check(e["code"] == -32000 and "chain id" in e["message"], f"wrong chain id rejected: {e}")
    pauper = Account.create()
    e = rpc.error("eth_sendRawTransaction", sign(pauper.key, nonce=0, to=contract))
    check(e["code"] == -32000 and "insufficient funds for gas * price + value" in e["message"], f"funds: {e}")
    e = rpc.error("eth_sendRawTransaction", sign(k0, nonce=2, to=contract, maxFeePerGas=1, maxPriorityFeePerGas=1))
    check(e["code"] == -32000 and "max fee per gas less than block base fee" in e["message"], f"fee cap: {e}")
    bad = bytearray(bytes.fromhex(sign(k0, nonce=2, to=contract)[2:]))
    bad[-5] ^= 0xFF  # corrupt s
    e = rpc.error("eth_sendRawTransaction", "0x" + bad.hex())
    check(e["code"] == -32000, f"bad signature rejected: {e}")
    check(rpc("eth_blockNumber") == "0x2", "rejected txs mine nothing")

    # a legacy EIP-155 transaction, and server-side signing with eth_sendTransaction
    legacy = Account.sign_transaction({"nonce": 2, "gasPrice": 5 * GWEI, "gas": 21000, "to": a1["address"],
                                       "value": 12345, "data": b"", "chainId": CHAIN_ID}, k0)
    h = rpc("eth_sendRawTransaction", "0x" + legacy.raw_transaction.hex().removeprefix("0x"))
    check(rpc("eth_getTransactionReceipt", h)["type"] == "0x0", "legacy tx mined")
    check(rpc("eth_getTransactionByHash", h)["chainId"] == hex(CHAIN_ID), "legacy chainId from v")
    legacy_bad = Account.sign_transaction({"nonce": 3, "gasPrice": 5 * GWEI, "gas": 21000, "to": a1["address"],
                                           "value": 1, "data": b"", "chainId": 1}, k0)
    e = rpc.error("eth_sendRawTransaction", "0x" + legacy_bad.raw_transaction.hex().removeprefix("0x"))
    check("chain id" in e["message"], f"legacy tx for another chain rejected: {e}")
    before = int(rpc("eth_getBalance", a1["address"]), 16)
    h = rpc("eth_sendTransaction", {"from": a0["address"], "to": a1["address"], "value": hex(10**18)})
    check(rpc("eth_getTransactionReceipt", h)["status"] == "0x1", "eth_sendTransaction mined")
    check(int(rpc("eth_getBalance", a1["address"]), 16) == before + 10**18, "value transferred")

    # logs: three emitting txs in three blocks, then filters
    t_a, t_b = keccak(b"A"), keccak(b"B")
    calldata = [b"\x04" + word(7) + word(70) + t_a, b"\x04" + word(8) + word(80) + t_b,
                b"\x04" + word(9) + word(90) + t_a]
    est = int(rpc("eth_estimateGas", {"from": a0["address"], "to": contract, "data": "0x" + calldata[0].hex()}), 16)
    check(est > 21000 + 20000, f"estimateGas covers SSTORE + LOG2: {est}")
    log_blocks = []
    for i, cd in enumerate(calldata):
        h = rpc("eth_sendTransaction", {"from": a0["address"], "to": contract, "data": "0x" + cd.hex()})
        r = rpc("eth_getTransactionReceipt", h)
        check(r["status"] == "0x1" and len(r["logs"]) == 1, "log tx receipt")
        lg = r["logs"][0]
        check(lg["topics"] == ["0x" + cd[65:97].hex(), "0x" + word(7 + i).hex()], "log topics")
        check(lg["data"] == "0x" + word(70 + 10 * i).hex() and lg["logIndex"] == "0x0" and lg["removed"] is False,
              "log data/logIndex")
        check(int(r["gasUsed"], 16) <= est + 5000, "estimate is close to use")
        log_blocks.append(r["blockNumber"])
    check(int(rpc("eth_getStorageAt", contract, "0x0", "latest"), 16) == 9, "eth_getStorageAt")
    everything = rpc("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    check(len(everything) == 3, f"all logs: {len(everything)}")
    check(len(rpc("eth_getLogs", {"fromBlock": "earliest", "address": [contract, a1["address"]]})) == 3, "address list")
    check(len(rpc("eth_getLogs", {"fromBlock": "0x0", "address": a1["address"]})) == 0, "other address")
    only_a = rpc("eth_getLogs", {"fromBlock": "0x0", "topics": ["0x" + t_a.hex()]})
    check([x["blockNumber"] for x in only_a] == [log_blocks[0], log_blocks[2]], "topic0 filter")
    either = rpc("eth_getLogs", {"fromBlock": "0x0", "topics": [["0x" + t_a.hex(), "0x" + t_b.hex()]]})
    check(len(either) == 3, "OR-list topic")
    by_t1 = rpc("eth_getLogs", {"fromBlock": "0x0", "topics": [None, "0x" + word(8).hex()]})
    check(len(by_t1) == 1 and by_t1[0]["blockNumber"] == log_blocks[1], "null wildcard + topic1")
    check(rpc("eth_getLogs", {"fromBlock": "0x0", "topics": [None, None, None]}) == [], "more topics than the log")
    ranged = rpc("eth_getLogs", {"fromBlock": log_blocks[1], "toBlock": log_blocks[2]})
    check(len(ranged) == 2, "block range")
    block_b = rpc("eth_getBlockByNumber", log_blocks[1], False)["hash"]
    check(len(rpc("eth_getLogs", {"blockHash": block_b})) == 1, "blockHash filter")
    check(rpc("eth_getLogs", {"fromBlock": "latest"}) == only_a[1:], "default toBlock latest")

    # fee history: real base fees from blocks
    fh = rpc("eth_feeHistory", "0x4", "latest", [25, 75])
    head = int(rpc("eth_blockNumber"), 16)
    check(fh["oldestBlock"] == hex(head - 3) and len(fh["baseFeePerGas"]) == 5 and len(fh["reward"]) == 4,
          f"feeHistory shape: {fh}")
    check(fh["baseFeePerGas"][-2] == rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"],
          "feeHistory base fee of the newest block")

    # time travel
    ts0 = int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    offset = rpc("evm_increaseTime", 3600)
    check(isinstance(offset, int) and offset >= 3600, f"evm_increaseTime returns the total offset: {offset}")
    rpc("evm_mine")
    ts1 = int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    check(ts1 >= ts0 + 3600, f"time moved by an hour: {ts0} -> {ts1}")
    check(int(rpc("eth_call", {"to": contract, "data": "0x02"}), 16) == ts1, "TIMESTAMP in eth_call at latest")
    target = ts1 + 86400
    rpc("evm_setNextBlockTimestamp", hex(target))
    rpc("evm_mine")
    check(int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16) == target, "setNextBlockTimestamp")
    rpc("evm_mine", target + 100)
    check(int(rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16) == target + 100, "evm_mine(ts)")
    e = rpc.error("evm_setNextBlockTimestamp", hex(target))
    check(e["code"] == -32000, "timestamp in the past rejected")
    h = rpc("eth_sendTransaction", {"from": a0["address"], "to": a1["address"], "value": "0x1"})
    blk = rpc("eth_getTransactionReceipt", h)["blockNumber"]
    check(int(rpc("eth_getBlockByNumber", blk, False)["timestamp"], 16) > target + 100, "time goes on after a jump")

    # snapshot / revert: dropped blocks vanish, new blocks at the same height get new hashes
    height = int(rpc("eth_blockNumber"), 16)
    snap = rpc("evm_snapshot")
    check(snap.startswith("0x"), "snapshot id")
    dropped_tx = rpc("eth_sendTransaction", {"from": a0["address"], "to": a1["address"], "value": "0x2"})
    rpc("evm_mine")
    dropped = rpc("eth_getBlockByNumber", hex(height + 1), False)["hash"]
    check(rpc("eth_blockNumber") == hex(height + 2), "two blocks after snapshot")
    check(rpc("evm_revert", snap) is True, "evm_revert -> true")
    check(rpc("eth_blockNumber") == hex(height), "head back at the snapshot")
    check(rpc("eth_getBlockByHash", dropped, False) is None, "dropped block gone by hash")
    check(rpc("eth_getBlockByNumber", hex(height + 1), False) is None, "dropped block gone by number")
    check(rpc("eth_getTransactionReceipt", dropped_tx) is None, "dropped tx has no receipt")
    rpc("evm_mine")
    replacement = rpc("eth_getBlockByNumber", hex(height + 1), False)
    check(replacement["hash"] != dropped, "new block at the same height has a new hash")
    check(replacement["parentHash"] == rpc("eth_getBlockByNumber", hex(height), False)["hash"], "new block's parent")
    check(rpc("evm_revert", snap) is False, "a used snapshot is gone")
    check(rpc("evm_revert", "0x999") is False, "unknown snapshot -> false")

    # setBalance
    rpc("anvil_setBalance", pauper.address, hex(5 * 10**18))
    check(int(rpc("eth_getBalance", pauper.address), 16) == 5 * 10**18, "anvil_setBalance")
    rpc("hardhat_setBalance", pauper.address, hex(6 * 10**18))
    check(int(rpc("eth_getBalance", pauper.address, "latest"), 16) == 6 * 10**18, "hardhat_setBalance")
    h = rpc("eth_sendRawTransaction", sign(pauper.key, nonce=0, to=a1["address"], gas=21000, value=1))
    check(rpc("eth_getTransactionReceipt", h)["status"] == "0x1", "a set balance pays for a tx")

    # timestamps strictly increase over the whole chain
    head = int(rpc("eth_blockNumber"), 16)
    stamps = [int(rpc("eth_getBlockByNumber", hex(n), False)["timestamp"], 16) for n in range(head + 1)]
    check(all(b > a for a, b in zip(stamps, stamps[1:])), "block timestamps strictly increase")

    # JSON-RPC framing: batch, parse error, invalid request, unknown method, invalid params
    batch = rpc.post([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "no_such_method", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x12"]},
        42,
    ])
    check(isinstance(batch, list) and len(batch) == 4, "batch answers every entry")
    check(batch[0]["id"] == 1 and batch[0]["result"] == hex(CHAIN_ID), "batch result")
    check(batch[1]["error"]["code"] == -32601, "method not found")
    check(batch[2]["error"]["code"] == -32602, "invalid params")
    check(batch[3]["error"]["code"] == -32600, "invalid request in batch")
    req = urllib.request.Request(rpc.url, data=b"{not json", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        check(json.loads(resp.read())["error"]["code"] == -32700, "parse error")
    check(rpc.post({"jsonrpc": "2.0", "id": 5, "method": 7})["error"]["code"] == -32600, "invalid request")
    check(rpc.post([])["error"]["code"] == -32600, "empty batch")
    check(rpc.error("eth_getBlockByNumber", "latest", "yes")["code"] == -32602, "bad bool")
    check(rpc("eth_chainId") == hex(CHAIN_ID), "still alive after bad requests")


def main():
    t0 = time.monotonic()
    proc, info = start("--chain-id", str(CHAIN_ID), "--accounts", "3", "--balance-eth", "1000", "--stop-on-eof")
    try:
        check(set(info) == {"rpc", "chainId", "accounts"} and info["chainId"] == CHAIN_ID, "JSON line")
        main_checks(Client(info["rpc"]), info)
        # --stop-on-eof: closing our end of its stdin stops it
        proc.stdin.close()
        check(wait_exit(proc) == 0, "exit 0 on stdin EOF")
        check(proc.stdout.read() == b"", "exactly one line on stdout")
    finally:
        if proc.poll() is None:
            proc.kill()

    # --block-time, and SIGTERM
    proc, info = start("--block-time", "0.3", "--accounts", "1")
    try:
        rpc = Client(info["rpc"])
        check(info["chainId"] == 1337 and rpc("eth_chainId") == "0x539", "default chain id 1337")
        time.sleep(1.2)
        check(int(rpc("eth_blockNumber"), 16) >= 2, "--block-time mines empty blocks")
        proc.send_signal(signal.SIGTERM)
        check(wait_exit(proc) == 0, "exit 0 on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"selftest: all checks passed in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"selftest: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
