import ParleyCrypto
import ParleyWire

/// A participant's signature on a state, under the channel's backend.
public enum StateSignature: Hashable, Sendable {
    /// 64 bytes, Ed25519.
    case ed25519(Signature)
    /// 65 bytes, `r ‖ s ‖ v`, low s: what Ethereum's `ecrecover` takes.
    case ethereum(RecoverableSignature)

    public var backend: ChannelBackendID {
        switch self {
        case .ed25519: .ed25519
        case .ethereum: .ethereum
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case let .ed25519(signature): signature.bytes
        case let .ethereum(signature): signature.bytes
        }
    }
}

/// On the wire: the backend tag, then the signature's fixed bytes (64 or 65).
extension StateSignature: BackendTagged {
    public init(from reader: inout WireReader) throws(WireError) {
        switch try Self.readBackend("signature backend", from: &reader) {
        case .ed25519: self = .ed25519(try Signature(from: &reader))
        case .ethereum: self = .ethereum(try RecoverableSignature(from: &reader))
        }
    }
}

/// The key that signs states for one seat: the node identity on the Ed25519 backend, the
/// settlement key on Ethereum.
public protocol StateSigner: Sendable {
    /// The address the channel's params must name for this signer's seat.
    var settlementAddress: SettlementAddress { get }
    /// Signs a state's digest (from ``ChannelParams/signingDigest(of:)``).
    func signState(_ digest: Digest) -> StateSignature
}

extension SigningKey {
    /// What signs this identity's states on `backend`: the identity itself on Ed25519, its
    /// settlement key (`settlementKey`, derived from the seed on every call) on Ethereum.
    public func stateSigner(for backend: ChannelBackendID) -> any StateSigner {
        switch backend {
        case .ed25519: self
        case .ethereum: settlementKey
        }
    }
}

extension SigningKey: StateSigner {
    public var settlementAddress: SettlementAddress { .ed25519(publicKey) }

    public func signState(_ digest: Digest) -> StateSignature {
        .ed25519(sign(digest.bytes))
    }
}

extension EthereumSigningKey: StateSigner {
    public var settlementAddress: SettlementAddress { .ethereum(address) }

    public func signState(_ digest: Digest) -> StateSignature {
        .ethereum(sign(digest))
    }
}
