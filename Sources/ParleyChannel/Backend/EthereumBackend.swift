import ParleyCrypto
import ParleyWire

/// The backend an EVM adjudicator can check: secp256k1 signatures recovered with
/// `ecrecover`, over an EIP-712 digest of the state, with the channel id Keccak-256 of the
/// ABI-encoded params. Docs/Protocol.md, "The Ethereum backend", gives the exact bytes and a
/// vector checked with eth-account.
///
/// ```text
/// channel id      = keccak256(abi.encode(uint256 chainId, address adjudicator, bytes32[2] identities,
///                     address[2] signers, bytes32 nonce, uint64 challengeDuration, bytes32 keccak256(appID)))
/// domainSeparator = keccak256(abi.encode(keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
///                     keccak256("Parley"), keccak256("1"), chainId, adjudicator))
/// structHash      = keccak256(abi.encode(keccak256("State(bytes32 channelId,uint64 version,uint256[2] balances,bytes32 appDataHash,bool isFinal)"),
///                     channelId, version, keccak256(abi.encode(balance0, balance1)), keccak256(appData), isFinal))
/// digest          = keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)
/// ```
///
/// The settlement domain must name the adjudicator: a 20-byte contract address.
///
/// The id includes both transport identities (Ed25519 public keys), so every signature on a
/// state also binds each seat's settlement address to the identity its peer authenticated:
/// a peer that relays another node's signatures, or names someone else's address as its
/// own, gets a different channel id from each side and no valid signature. The contract
/// treats the identities as opaque words of the parameters.
public struct EthereumBackend: ChannelBackend {
    public init() {}

    public var id: ChannelBackendID { .ethereum }

    /// The adjudicator contract's `MAX_APP_DATA` (`Contracts/Adjudicator.vy`): its calldata and
    /// events hold at most this many bytes of app data.
    public static let maxAppDataBytes = 1024

    public var maxAppDataBytes: Int { Self.maxAppDataBytes }

    /// EIP-712 domain name and version.
    public static let domainName = "Parley"
    public static let domainVersion = "1"
    public static let domainType = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    public static let stateType = "State(bytes32 channelId,uint64 version,uint256[2] balances,bytes32 appDataHash,bool isFinal)"

    public func validate(_ terms: ChannelTerms) throws(WireError) {
        guard terms.domain.contract.count == EthereumAddress.byteCount else {
            throw .invalidValue(
                field: "settlement domain",
                reason: "an Ethereum channel's domain names its adjudicator: a 20-byte contract address")
        }
        for signer in terms.signers {
            guard case let .ethereum(address) = signer else {
                throw .invalidValue(field: "signers", reason: "every seat of an Ethereum channel signs with an Ethereum address")
            }
            // `ecrecover` answers the zero address for a signature it cannot recover, so a
            // contract must never take it for a seat's signer.
            guard address.bytes.contains(where: { $0 != 0 }) else {
                throw .invalidValue(field: "signers", reason: "the zero address cannot sign for a seat")
            }
        }
    }

    public func channelID(of terms: ChannelTerms, canonicalBytes: [UInt8]) -> ChannelID {
        ChannelID(digest: Keccak256.hash(ABI.encode(Self.idFields(terms))))
    }

    /// `domain` must name a 20-byte contract, as every Ethereum channel's does (`validate`).
    public func signingDigest(of state: ChannelState, domain: SettlementDomain) -> Digest {
        Keccak256.hash([0x19, 0x01], Self.domainSeparator(domain).bytes, Self.structHash(state).bytes)
    }

    public func isValid(_ signature: StateSignature, of digest: Digest, by signer: SettlementAddress) -> Bool {
        guard case let .ethereum(signature) = signature, case let .ethereum(address) = signer else { return false }
        return signature.recoverSigner(of: digest) == address
    }

    /// `abi.encode` of the state as the adjudicator takes it in calldata:
    /// `(bytes32 channelId, uint64 version, uint256[2] balances, bytes appData, bool isFinal)`.
    public static func abiEncoded(_ state: ChannelState) -> [UInt8] {
        ABI.encode([.tuple([
            .fixedBytes(state.channelID.digest.bytes), .uint(state.version),
            .fixedArray([.amount(state.allocation[.first]), .amount(state.allocation[.second])]),
            .bytes(state.appData), .bool(state.isFinal),
        ])])
    }

    public static func domainSeparator(_ domain: SettlementDomain) -> Digest {
        Keccak256.hash(ABI.encode([
            .fixedBytes(Keccak256.hash(Array(domainType.utf8)).bytes),
            .fixedBytes(Keccak256.hash(Array(domainName.utf8)).bytes),
            .fixedBytes(Keccak256.hash(Array(domainVersion.utf8)).bytes),
            .uint(domain.chainID), .address(domain.contract),
        ]))
    }

    public static func structHash(_ state: ChannelState) -> Digest {
        let balances = Keccak256.hash(ABI.encode([.amount(state.allocation[.first]), .amount(state.allocation[.second])]))
        return Keccak256.hash(ABI.encode([
            .fixedBytes(Keccak256.hash(Array(stateType.utf8)).bytes),
            .fixedBytes(state.channelID.digest.bytes), .uint(state.version), .fixedBytes(balances.bytes),
            .fixedBytes(Keccak256.hash(state.appData).bytes), .bool(state.isFinal),
        ]))
    }

    static func idFields(_ terms: ChannelTerms) -> [ABIValue] {
        [
            .uint(terms.domain.chainID), .address(terms.domain.contract),
            .fixedArray(terms.participants.map { .fixedBytes($0.bytes) }),
            .fixedArray(terms.signers.map { .address($0.bytes) }), .fixedBytes(terms.nonce),
            .uint(terms.challengeDuration), .fixedBytes(Keccak256.hash(Array(terms.appID.rawValue.utf8)).bytes),
        ]
    }
}
