import ParleyChannel
import ParleyCrypto
import ParleyEthereum
import ParleyWire

/// Answers a JSON-RPC endpoint really gives (a block, a receipt, the adjudicator's logs, a
/// revert), with the adjudicator's ABI data encoded as the contract emits it, for the
/// samples' Ethereum channel.
enum EthereumSeeds {
    static let adjudicator: EthereumAddress = {
        guard let address = try? EthereumAddress(bytes: [UInt8](repeating: 0xad, count: 20)) else {
            preconditionFailure("20 bytes are an address")
        }
        return address
    }()

    static var all: [[UInt8]] {
        guard let params = Samples.ethereumParams else { return [] }
        let hash = hex(Keccak256.hash(Array("block".utf8)).bytes)
        let channelTopic = hex(params.id.digest.bytes)
        let identities: [ABIValue] = [.fixedBytes(params[.first].bytes), .fixedBytes(params[.second].bytes)]
        let signers: [ABIValue] = [.address(params.signer(.first).bytes), .address(params.signer(.second).bytes)]
        let opened = ABI.encode([
            .fixedArray(identities), .fixedArray(signers), .fixedBytes([UInt8](repeating: 9, count: 32)), .uint(3600),
            .string(params.appID.rawValue), .fixedArray([.amount(Amount(1_000)), .amount(Amount(1_000))]),
        ])
        let registered = ABI.encode([
            .uint(4), .uint(5_000), .uint(1), .fixedArray([.amount(Amount(990)), .amount(Amount(1_010))]), .bytes([1, 2]), .bool(false),
        ])
        let concluded = ABI.encode([.uint(4), .fixedArray([.amount(Amount(990)), .amount(Amount(1_010))])])
        func log(_ topic: Digest, _ data: [UInt8], index: Int) -> String {
            """
            {"address":"\(adjudicator.description)","topics":["\(hex(topic.bytes))","\(channelTopic)"],"data":"\(hex(data))",\
            "logIndex":"0x\(String(index, radix: 16))","blockNumber":"0x10","blockHash":"\(hash)","removed":false}
            """
        }
        let logs = [
            log(AdjudicatorABI.Topic.opened, opened, index: 0), log(AdjudicatorABI.Topic.registered, registered, index: 1),
            log(AdjudicatorABI.Topic.concluded, concluded, index: 2),
        ]
        let revert = [0x08, 0xc3, 0x79, 0xa0] + ABI.encode([.string("SettlementError.staleVersion")])
        let replies = [
            #"{"jsonrpc":"2.0","id":1,"result":{"number":"0x10","hash":"\#(hash)","timestamp":"0x5f5e100","baseFeePerGas":"0x7"}}"#,
            #"{"jsonrpc":"2.0","id":2,"result":{"blockNumber":"0x10","blockHash":"\#(hash)","status":"0x1","gasUsed":"0x5208","effectiveGasPrice":"0x3b9aca00","contractAddress":null,"logs":[\#(logs[1])]}}"#,
            #"{"jsonrpc":"2.0","id":3,"result":[\#(logs.joined(separator: ","))]}"#,
            #"{"jsonrpc":"2.0","id":4,"error":{"code":3,"message":"execution reverted","data":"\#(hex(revert))"}}"#,
            #"{"jsonrpc":"2.0","id":5,"result":null}"#,
        ]
        var seeds = replies.map { [0] + Array($0.utf8) }
        seeds.append([1, 2, 0, 0x80] + params.id.digest.bytes + opened)
        seeds.append([1, 2, 3, 0x80] + params.id.digest.bytes + registered)
        seeds.append([2] + revert)
        return seeds
    }

    private static func hex(_ bytes: some Sequence<UInt8>) -> String { "0x" + Hex.encode(bytes) }
}
