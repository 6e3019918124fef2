import ParleyCrypto
import ParleyWire

/// Whose signature a seat's states need: a participant's address under the channel's backend.
///
/// On the Ed25519 backend it is the participant's transport identity itself; on Ethereum it
/// is the account of the participant's secp256k1 settlement key.
public enum SettlementAddress: Hashable, Sendable, CustomStringConvertible {
    case ed25519(PublicKey)
    case ethereum(EthereumAddress)

    public var backend: ChannelBackendID {
        switch self {
        case .ed25519: .ed25519
        case .ethereum: .ethereum
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case let .ed25519(key): key.bytes
        case let .ethereum(address): address.bytes
        }
    }

    /// `pk1…` or the EIP-55 `0x…` form.
    public var description: String {
        switch self {
        case let .ed25519(key): key.description
        case let .ethereum(address): address.description
        }
    }
}

/// On the wire: the backend tag, then the address's fixed bytes (32 or 20).
extension SettlementAddress: BackendTagged {
    public init(from reader: inout WireReader) throws(WireError) {
        switch try Self.readBackend("settlement address backend", from: &reader) {
        case .ed25519: self = .ed25519(try PublicKey(from: &reader))
        case .ethereum: self = .ethereum(try EthereumAddress(from: &reader))
        }
    }
}
