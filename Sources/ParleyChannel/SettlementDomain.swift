import ParleyCrypto
import ParleyWire

/// The chain (and, on Ethereum, the adjudicator contract) a channel settles on.
///
/// It is part of the channel parameters, so it is hashed into the channel id and hence
/// into every state anyone signs: a state signed for one chain can never be registered on
/// another, even by the same two keys. The settlement adapter says which domain it serves
/// (`SettlementAdapter.domain`); the node builds every channel on that domain, refuses
/// proposals for any other, and every adjudicator refuses deposits for any other.
public struct SettlementDomain: Hashable, Sendable, CustomStringConvertible {
    /// Which chain: a chain id as the chain defines it (EIP-155 on Ethereum).
    public let chainID: UInt64
    /// The adjudicator's address on chains that run one as a contract (20 bytes on
    /// Ethereum); empty on Parley's own chains, where the chain id alone names the ledger.
    public let contract: [UInt8]

    /// The longest contract address a domain may carry.
    public static let maxContractBytes = 32

    /// The embedded `LocalChain` unless it is given another: chain id "parley" in ASCII.
    public static let embedded = SettlementDomain(known: 0x70_61_72_6c_65_79)
    /// A `parley devchain` started without `--chain-id`: "pdev" in ASCII.
    public static let devchainDefault = SettlementDomain(known: 0x70_64_65_76)

    public init(chainID: UInt64, contract: [UInt8] = []) throws(WireError) {
        guard contract.count <= Self.maxContractBytes else {
            throw .invalidValue(field: "settlement contract", reason: "must be at most \(Self.maxContractBytes) bytes")
        }
        self.chainID = chainID
        self.contract = contract
    }

    private init(known chainID: UInt64) {
        self.chainID = chainID
        contract = []
    }

    public var description: String {
        contract.isEmpty ? "chain \(chainID)" : "chain \(chainID), contract 0x\(Hex.encode(contract))"
    }
}

extension SettlementDomain: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(chainID)
        writer.writeVariable(contract)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let chainID = try reader.readUInt64("chain id")
        let contract = try reader.readVariable(limit: Self.maxContractBytes, "settlement contract")
        try self.init(chainID: chainID, contract: contract)
    }
}
