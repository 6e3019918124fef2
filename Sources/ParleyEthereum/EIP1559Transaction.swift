import ParleyCrypto
import ParleyWire

/// An EIP-1559 (type 2) transaction: what the Ethereum adapter signs with the node's
/// settlement key and sends with `eth_sendRawTransaction`.
public struct EIP1559Transaction: Hashable, Sendable {
    public var chainID: UInt64
    public var nonce: UInt64
    public var maxPriorityFeePerGas: Amount
    public var maxFeePerGas: Amount
    public var gasLimit: UInt64
    /// `nil` creates a contract from `data`.
    public var to: EthereumAddress?
    public var value: Amount
    public var data: [UInt8]

    /// The EIP-2718 type byte.
    public static let type: UInt8 = 0x02

    public init(
        chainID: UInt64, nonce: UInt64, maxPriorityFeePerGas: Amount, maxFeePerGas: Amount, gasLimit: UInt64,
        to: EthereumAddress?, value: Amount = .zero, data: [UInt8] = []
    ) {
        self.chainID = chainID
        self.nonce = nonce
        self.maxPriorityFeePerGas = maxPriorityFeePerGas
        self.maxFeePerGas = maxFeePerGas
        self.gasLimit = gasLimit
        self.to = to
        self.value = value
        self.data = data
    }

    /// The fields both the signing hash and the signed transaction start with (an empty
    /// access list).
    private var fields: [RLPItem] {
        [
            .uint(chainID), .uint(nonce), .amount(maxPriorityFeePerGas), .amount(maxFeePerGas), .uint(gasLimit),
            .bytes(to?.bytes ?? []), .amount(value), .bytes(data), .list([]),
        ]
    }

    /// `keccak256(0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gasLimit, to, value, data, accessList]))`.
    public var signingHash: Digest {
        Keccak256.hash([Self.type] + RLPItem.list(fields).encoded)
    }

    /// `0x02 ‖ rlp([… the fields …, yParity, r, s])`: the bytes `eth_sendRawTransaction` takes.
    public func signed(with key: EthereumSigningKey) -> SignedTransaction {
        let signature = key.sign(signingHash).bytes
        let yParity = UInt64(signature[64] - 27)
        let r = Array(signature[0..<32].drop { $0 == 0 })
        let s = Array(signature[32..<64].drop { $0 == 0 })
        let raw = [Self.type] + RLPItem.list(fields + [.uint(yParity), .bytes(r), .bytes(s)]).encoded
        return SignedTransaction(raw: raw, hash: Keccak256.hash(raw), sender: key.address)
    }
}

/// A signed transaction: its raw bytes and its hash (how the chain names it).
public struct SignedTransaction: Hashable, Sendable {
    public let raw: [UInt8]
    public let hash: Digest
    public let sender: EthereumAddress
}
