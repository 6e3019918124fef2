import Foundation
import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyEthereum

/// Transactions signed by Parley against Tests/Vectors/eip1559-transactions.json, which
/// eth-account signed from the same inputs (`make vectors` re-checks the file with it):
/// contract calls, a transfer above 2^64 wei, a contract creation, long data, a fee above
/// 2^64 and a nonce above 2^32, each byte for byte.
@Suite struct EIP1559TransactionTests {
    struct Vectors: Decodable {
        struct Transaction: Decodable {
            struct Inputs: Decodable {
                let chainId: UInt64
                let nonce: UInt64
                let maxPriorityFeePerGas: Amount
                let maxFeePerGas: Amount
                let gas: UInt64
                let to: String?
                let value: Amount
                let data: String
            }
            struct Outputs: Decodable {
                let raw: String
                let hash: String
            }
            let inputs: Inputs
            let outputs: Outputs
        }
        let secret: String
        let transactions: [Transaction]
    }

    static func bytes(_ hex: String) throws -> [UInt8] {
        try #require(Hex.decode(String(hex.dropFirst(2))))
    }

    @Test func signedTransactionsMatchEthAccountByteForByte() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Vectors/eip1559-transactions.json").standardized
        let vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
        let key = try EthereumSigningKey(secretBytes: Self.bytes(vectors.secret))
        #expect(vectors.transactions.count == 3)
        for (index, vector) in vectors.transactions.enumerated() {
            let inputs = vector.inputs
            let transaction = EIP1559Transaction(
                chainID: inputs.chainId, nonce: inputs.nonce, maxPriorityFeePerGas: inputs.maxPriorityFeePerGas,
                maxFeePerGas: inputs.maxFeePerGas, gasLimit: inputs.gas,
                to: try inputs.to.map { try EthereumAddress(hex: $0) }, value: inputs.value, data: try Self.bytes(inputs.data))
            let signed = transaction.signed(with: key)
            #expect("0x" + Hex.encode(signed.raw) == vector.outputs.raw, "transaction \(index)")
            #expect("0x" + signed.hash.hex == vector.outputs.hash, "transaction \(index)")
            #expect(signed.sender == key.address)
        }
    }

    /// The Yellow Paper's and Ethereum wiki's RLP examples.
    @Test func rlpEncodesTheStandardExamples() {
        #expect(RLPItem.bytes(Array("dog".utf8)).encoded == [0x83] + Array("dog".utf8))
        #expect(
            RLPItem.list([.bytes(Array("cat".utf8)), .bytes(Array("dog".utf8))]).encoded
                == [0xc8, 0x83] + Array("cat".utf8) + [0x83] + Array("dog".utf8))
        #expect(RLPItem.bytes([]).encoded == [0x80])
        #expect(RLPItem.list([]).encoded == [0xc0])
        #expect(RLPItem.uint(0).encoded == [0x80])
        #expect(RLPItem.uint(15).encoded == [0x0f])
        #expect(RLPItem.uint(1024).encoded == [0x82, 0x04, 0x00])
        #expect(RLPItem.bytes([0x00]).encoded == [0x00])
        // The set-theoretic representation of three: [ [], [[]], [ [], [[]] ] ].
        #expect(
            RLPItem.list([.list([]), .list([.list([])]), .list([.list([]), .list([.list([])])])]).encoded
                == [0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0])
        let lorem = Array("Lorem ipsum dolor sit amet, consectetur adipisicing elit".utf8)
        #expect(RLPItem.bytes(lorem).encoded == [0xb8, 0x38] + lorem)
        #expect(RLPItem.amount(Amount.max).encoded == [0x90] + [UInt8](repeating: 0xff, count: 16))
    }
}
