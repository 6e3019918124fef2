"""EIP-1559 transaction vectors, signed by eth-account.

`python eip1559_transactions.py write FILE` writes the vectors; `check FILE` re-signs each
one from its inputs and fails (exit 1) on any difference. `make vectors` runs `check` on
Tests/Vectors/eip1559-transactions.json; ParleyEthereumTests signs the same inputs with
Parley's RLP encoder and secp256k1 key and expects the same raw bytes and hashes.
"""
import json
import sys

from eth_account import Account

SECRET = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
INPUTS = [
    {"chainId": 1337, "nonce": 0, "maxPriorityFeePerGas": 1_000_000_000, "maxFeePerGas": 30_000_000_000,
     "gas": 21000, "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "value": 0, "data": "0x"},
    {"chainId": 1, "nonce": 127, "maxPriorityFeePerGas": 0, "maxFeePerGas": 1,
     "gas": 100000, "to": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "value": 100 * 10**18,
     "data": "0x" + "ab" * 60},
    {"chainId": 31337, "nonce": 2**32, "maxPriorityFeePerGas": 2 * 10**9, "maxFeePerGas": 2**70,
     "gas": 3_000_000, "to": None, "value": 1, "data": "0x6080604052" + "00" * 300},
]


def sign(vector):
    tx = dict(vector, type=2, accessList=[])
    if tx["to"] is None:
        del tx["to"]
    signed = Account.sign_transaction(tx, SECRET)
    return {"raw": "0x" + signed.raw_transaction.hex().removeprefix("0x"),
            "hash": "0x" + signed.hash.hex().removeprefix("0x")}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        print(__doc__)
        sys.exit(2)
    path = sys.argv[2]
    if sys.argv[1] == "write":
        with open(path, "w") as file:
            json.dump({"secret": SECRET, "transactions": [{"inputs": v, "outputs": sign(v)} for v in INPUTS]},
                      file, indent=2)
            file.write("\n")
        return
    with open(path) as file:
        vectors = json.load(file)
    bad = 0
    for index, vector in enumerate(vectors["transactions"]):
        expected = sign(vector["inputs"])
        if expected != vector["outputs"]:
            print(f"{path}: transaction {index}: eth-account signs {expected}, the file says {vector['outputs']}")
            bad += 1
    if bad:
        sys.exit(1)
    print(f"{path}: every transaction agrees with eth-account ({len(vectors['transactions'])} transactions)")


if __name__ == "__main__":
    main()
