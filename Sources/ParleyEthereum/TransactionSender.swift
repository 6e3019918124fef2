import Foundation
import ParleyCrypto
import ParleyWire

/// A mined transaction: its receipt's facts and the adjudicator logs it emitted.
package struct Receipt: Sendable {
    let hash: Digest
    let block: UInt64
    let blockHash: Digest
    let succeeded: Bool
    let gasUsed: UInt64
    let effectiveGasPrice: Amount
    let contractAddress: EthereumAddress?
    let logs: [JSONValue]
}

/// Why a transaction did not go through, before the adapter maps it to a `SettlementError`.
enum SendFailure: Error, Sendable {
    /// The call reverts (found by simulating it, or by the receipt): the reason string, when
    /// the revert data is an `Error(string)`.
    case reverted(String?)
    /// The account cannot pay for the gas (and value).
    case insufficientFunds(String)
    /// The endpoint failed or did not answer in time; the transaction may or may not be mined.
    case transport(String)
}

/// Sends one account's transactions: simulate, estimate, price, take a nonce, sign, send,
/// wait for the receipt and its confirmations, and resend with higher fees when it sits.
/// Several may be in flight at once, each with its own nonce.
///
/// Nonces come from the chain (`eth_getTransactionCount(…, "pending")`) when the sender
/// starts and after any refusal, and are counted locally in between, so nothing about them
/// needs to survive a restart: a transaction a crashed process left pending is counted, and
/// one the pool dropped leaves no gap. One sender per account per process
/// (`EthereumChain.sender(for:)`) hands out this process's nonces.
package actor TransactionSender {
    let chain: EthereumChain
    let key: EthereumSigningKey

    init(chain: EthereumChain, key: EthereumSigningKey) {
        self.chain = chain
        self.key = key
    }

    /// Simulates the call first, so a refusal costs no gas and says why.
    func send(to: EthereumAddress?, data: [UInt8], value: Amount = .zero) async throws(SendFailure) -> Receipt {
        let options = chain.options
        let chainID: UInt64
        let gas: UInt64
        do {
            chainID = try await chain.chainID()
            gas = try await estimate(to: to, data: data, value: value)
        } catch {
            throw Self.failure(error)
        }
        let started = ContinuousClock.now
        var attempt = 0
        while true {
            attempt += 1
            let nonce: UInt64
            var fees: (tip: Amount, max: Amount)
            do {
                fees = try await self.fees()
                nonce = try await allocateNonce()
            } catch {
                throw Self.failure(error)
            }
            var sent: [Digest] = []
            var lastSend = ContinuousClock.now
            var broadcast = true
            var waitingForLowerNonce = false
            while true {
                if broadcast {
                    let transaction = EIP1559Transaction(
                        chainID: chainID, nonce: nonce, maxPriorityFeePerGas: fees.tip, maxFeePerGas: fees.max,
                        gasLimit: gas, to: to, value: value, data: data
                    ).signed(with: key)
                    do {
                        _ = try await chain.rpc.call("eth_sendRawTransaction", [.string(Quantity.data(transaction.raw))])
                        sent.append(transaction.hash)
                    } catch let .rpc(_, message, _) {
                        let text = message.lowercased()
                        if text.contains("already known") || text.contains("known transaction") {
                            sent.append(transaction.hash)
                        } else if text.contains("nonce too high") || text.contains("nonce gap") {
                            // A lower nonce of ours, sent at the same moment, has not reached
                            // the node yet (nodes that do not queue future nonces say so):
                            // send this one again after a poll, until the deadline.
                            waitingForLowerNonce = true
                        } else if text.contains("nonce too low") || text.contains("replacement") {
                            // Mined or replaced meanwhile: one of ours may hold the nonce; the
                            // receipt check below finds it, else the next attempt takes a nonce
                            // read from the chain again.
                            if sent.isEmpty {
                                nextNonce = nil
                                break
                            }
                        } else if text.contains("insufficient funds") {
                            if sent.isEmpty { nextNonce = nil }
                            throw .insufficientFunds(message)
                        } else {
                            if sent.isEmpty { nextNonce = nil }
                            throw .transport("the node refused the transaction: \(message)")
                        }
                    } catch {
                        if sent.isEmpty { nextNonce = nil }
                        throw .transport(error.description)
                    }
                    lastSend = .now
                    broadcast = waitingForLowerNonce
                    waitingForLowerNonce = false
                }
                for hash in sent.reversed() {
                    // A failed poll is not a failed transaction: it is in flight, so keep
                    // asking until the deadline (giving up here would let a retry send a
                    // duplicate that reverts and costs gas).
                    guard let receipt = try? await self.receipt(hash) else { continue }
                    guard receipt.succeeded else {
                        throw .reverted(await revertReason(to: to, data: data, value: value, block: receipt.block))
                    }
                    return receipt
                }
                if ContinuousClock.now - started > options.transactionTimeout {
                    // The pool may have dropped it: the next transaction reads the nonce from
                    // the chain again and so fills the gap rather than queueing behind it.
                    nextNonce = nil
                    let names = sent.map { "0x" + $0.hex }.joined(separator: ", ")
                    throw .transport(
                        "transaction \(names) not confirmed within \(options.transactionTimeout); it may still be mined: read the chain before retrying")
                }
                if ContinuousClock.now - lastSend > options.resubmitAfter, !sent.isEmpty {
                    // Replace it with 12.5 % higher fees (the pools' minimum is 10 %), up to the caps.
                    fees.tip = min(options.maxPriorityFeePerGas, fees.tip + fees.tip / 8 + 1)
                    fees.max = min(options.maxFeePerGas, fees.max + fees.max / 8 + 1)
                    broadcast = true
                }
                try? await Task.sleep(for: options.pollInterval)
            }
            guard attempt < 5 else { throw .transport("the node kept refusing our nonce as too low") }
        }
    }

    /// The next nonce of ours: read from the chain (`pending`) the first time and after a
    /// refusal, then counted here, so concurrent transactions of one account each take their
    /// own without waiting for one another's receipts. A transaction that never reached the
    /// pool makes the next one read the chain again, which fills the gap it left.
    private var nextNonce: UInt64?

    private func allocateNonce() async throws(EthereumRPCError) -> UInt64 {
        if nextNonce == nil {
            let pending = try Quantity.uint64(
                try await chain.rpc.call("eth_getTransactionCount", [.string(Quantity.data(key.address.bytes)), .string("pending")]),
                "transaction count")
            // Another caller may have read it while this one waited.
            if nextNonce == nil { nextNonce = pending }
        }
        let nonce = nextNonce ?? 0
        nextNonce = nonce + 1
        return nonce
    }

    private func estimate(to: EthereumAddress?, data: [UInt8], value: Amount) async throws(EthereumRPCError) -> UInt64 {
        var request: [String: JSONValue] = [
            "from": .string(Quantity.data(key.address.bytes)), "data": .string(Quantity.data(data)),
        ]
        if let to { request["to"] = .string(Quantity.data(to.bytes)) }
        if value > .zero { request["value"] = .string(Quantity.hex(value)) }
        let estimate = try Quantity.uint64(try await chain.rpc.call("eth_estimateGas", [.object(request)]), "gas estimate")
        // A margin for state that changes between estimate and inclusion.
        return estimate + estimate / 5 + 10_000
    }

    /// Tip and fee cap: twice the latest base fee plus the tip the node suggests, within the caps.
    private func fees() async throws(EthereumRPCError) -> (tip: Amount, max: Amount) {
        let options = chain.options
        let suggested = (try? Quantity.amount(try await chain.rpc.call("eth_maxPriorityFeePerGas"), "tip"))
            ?? Amount(UInt64(1_000_000_000))
        let tip = min(suggested, options.maxPriorityFeePerGas)
        let base = try await chain.block("latest")?.baseFee ?? .zero
        let (doubled, overflow) = base.addingReportingOverflow(base)
        let wanted = overflow ? options.maxFeePerGas : doubled + tip
        return (tip, min(wanted, options.maxFeePerGas))
    }

    func receipt(_ hash: Digest) async throws(EthereumRPCError) -> Receipt? {
        let value = try await chain.rpc.call("eth_getTransactionReceipt", [.string(Quantity.data(hash.bytes))])
        guard let receipt = try Self.receipt(from: value, hash: hash) else { return nil }
        let head = try await chain.blockNumber()
        guard head >= receipt.block, head - receipt.block + 1 >= chain.options.confirmations else { return nil }
        return receipt
    }

    /// A mined transaction's receipt from an `eth_getTransactionReceipt` answer; nil while
    /// it is not mined. A field that does not read is `.badAnswer`, also for a receipt not
    /// yet confirmed (its fields are read before `receipt(_:)` checks the confirmations).
    package static func receipt(from value: JSONValue, hash: Digest) throws(EthereumRPCError) -> Receipt? {
        guard !value.isNull, let blockValue = value["blockNumber"], !blockValue.isNull else { return nil }
        let block = try Quantity.uint64(blockValue, "receipt block")
        let contract: EthereumAddress? =
            if let address = value["contractAddress"], !address.isNull { try Quantity.address(address, "contract address") } else { nil }
        return Receipt(
            hash: hash, block: block, blockHash: try Quantity.digest(value["blockHash"], "receipt block hash"),
            succeeded: try Quantity.uint64(value["status"], "receipt status") == 1,
            gasUsed: try Quantity.uint64(value["gasUsed"], "gas used"),
            effectiveGasPrice: (try? Quantity.amount(value["effectiveGasPrice"], "gas price")) ?? .zero,
            contractAddress: contract, logs: value["logs"]?.array ?? [])
    }

    /// Why a mined transaction reverted: the same call simulated on the state it ran on.
    private func revertReason(to: EthereumAddress?, data: [UInt8], value: Amount, block: UInt64) async -> String? {
        guard let to else { return nil }
        do {
            _ = try await chain.call(to, data, from: key.address, value: value, block: Quantity.hex(block > 0 ? block - 1 : 0))
            return nil
        } catch {
            return Self.revertString(error)
        }
    }

    /// The reason string of a reverted call, when its revert data is `Error(string)`.
    package static func revertString(_ error: EthereumRPCError) -> String? {
        guard case let .rpc(_, message, data) = error else { return nil }
        if let data, data.count >= 4, Array(data.prefix(4)) == [0x08, 0xc3, 0x79, 0xa0],
            let text = try? ABIDecoder(Array(data.dropFirst(4))).string(0, limit: 1024, "revert reason")
        {
            return text
        }
        // Some nodes put the reason only in the message: "execution reverted: reason".
        if let range = message.range(of: "execution reverted: ") { return String(message[range.upperBound...]) }
        return nil
    }

    static func isRevert(_ error: EthereumRPCError) -> Bool {
        guard case let .rpc(code, message, _) = error else { return false }
        return code == 3 || message.lowercased().contains("revert")
    }

    static func failure(_ error: EthereumRPCError) -> SendFailure {
        if isRevert(error) { return .reverted(revertString(error)) }
        if case let .rpc(_, message, _) = error, message.lowercased().contains("insufficient funds") {
            return .insufficientFunds(message)
        }
        return .transport(error.description)
    }
}
