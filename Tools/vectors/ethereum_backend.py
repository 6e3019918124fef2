"""The Ethereum backend's test vector, computed and checked with eth-abi and eth-account.

`python ethereum_backend.py write FILE` writes the vector from its inputs;
`python ethereum_backend.py check FILE` recomputes every output from the inputs in FILE
and fails (exit 1, naming the field) if any differs. `make test` runs `check` on the
committed Tests/Vectors/ethereum-backend.json, and ParleyChannelTests checks that Parley
computes the same bytes: two independent implementations agree on every signed byte.
"""
import json
import sys

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

INPUTS = {
    "chainId": 1337,
    "adjudicator": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "identities": [
        "0x8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        "0x8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    ],
    "signerSecrets": [
        "0x0000000000000000000000000000000000000000000000000000000000000001",
        "0x0000000000000000000000000000000000000000000000000000000000000002",
    ],
    "nonce": "0x" + "07" * 32,
    "challengeDuration": 60,
    "appID": "parley.payment/1",
    "state": {
        "version": 3,
        "balances": [100 * 10**18, 50 * 10**18],
        "appData": "0xab",
        "isFinal": False,
    },
}

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
STATE_TYPE = [
    {"name": "channelId", "type": "bytes32"},
    {"name": "version", "type": "uint64"},
    {"name": "balances", "type": "uint256[2]"},
    {"name": "appDataHash", "type": "bytes32"},
    {"name": "isFinal", "type": "bool"},
]


def hexbytes(text):
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def compute(inputs):
    signers = [Account.from_key(secret) for secret in inputs["signerSecrets"]]
    addresses = [signer.address for signer in signers]
    channel_id = keccak(encode(
        ["uint256", "address", "bytes32[2]", "address[2]", "bytes32", "uint64", "bytes32"],
        [inputs["chainId"], inputs["adjudicator"], [hexbytes(i) for i in inputs["identities"]], addresses,
         hexbytes(inputs["nonce"]), inputs["challengeDuration"], keccak(inputs["appID"].encode())]))
    state = inputs["state"]
    app_data = hexbytes(state["appData"])
    abi_state = encode(
        ["(bytes32,uint64,uint256[2],bytes,bool)"],
        [(channel_id, state["version"], state["balances"], app_data, state["isFinal"])])
    typed = {
        "types": {"EIP712Domain": DOMAIN_TYPE, "State": STATE_TYPE},
        "primaryType": "State",
        "domain": {"name": "Parley", "version": "1", "chainId": inputs["chainId"],
                   "verifyingContract": inputs["adjudicator"]},
        "message": {"channelId": channel_id, "version": state["version"], "balances": state["balances"],
                    "appDataHash": keccak(app_data), "isFinal": state["isFinal"]},
    }
    signable = encode_typed_data(full_message=typed)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    signatures = []
    for signer in signers:
        signed = Account.sign_typed_data(signer.key, full_message=typed)
        assert signed.message_hash == digest
        signatures.append("0x" + signed.signature.hex().removeprefix("0x"))
        assert Account.recover_message(signable, signature=signed.signature) == signer.address
    return {
        "signerAddresses": [to_checksum_address(a) for a in addresses],
        "channelId": "0x" + channel_id.hex(),
        "abiEncodedState": "0x" + abi_state.hex(),
        "domainSeparator": "0x" + signable.header.hex(),
        "structHash": "0x" + signable.body.hex(),
        "digest": "0x" + digest.hex(),
        "signatures": signatures,
    }


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        print(__doc__)
        sys.exit(2)
    path = sys.argv[2]
    if sys.argv[1] == "write":
        with open(path, "w") as file:
            json.dump({"inputs": INPUTS, "outputs": compute(INPUTS)}, file, indent=2)
            file.write("\n")
        return
    with open(path) as file:
        vector = json.load(file)
    expected = compute(vector["inputs"])
    bad = [key for key in expected if expected[key] != vector["outputs"].get(key)]
    if bad:
        for key in bad:
            print(f"{path}: {key} is {vector['outputs'].get(key)}, eth-abi/eth-account compute {expected[key]}")
        sys.exit(1)
    print(f"{path}: every output agrees with eth-abi and eth-account ({len(expected)} fields)")


if __name__ == "__main__":
    main()
