# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title Parley development token
@license MIT
@notice A plain ERC-20 whose `mint` anyone may call: the faucet of development chains
        (the conformance suite, drills and `parley demo --chain evm --asset token`).
        Never deploy it where its tokens are meant to be worth anything.
"""
from ethereum.ercs import IERC20

implements: IERC20

name: public(constant(String[32])) = "Parley Dev Token"
symbol: public(constant(String[8])) = "PDEV"
decimals: public(constant(uint8)) = 0

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log Transfer(sender=empty(address), receiver=to, value=amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=msg.sender, receiver=to, value=amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=owner, receiver=to, value=amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True
