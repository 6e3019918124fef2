import ParleyChannel
import ParleyCrypto
import ParleyWire

/// Real values for the seed corpora: two fixed keys, an Ed25519 payment channel and an
/// Ethereum-backend one, and states signed by both seats, made by the same code a node runs.
/// Seeds built from them are what a peer, a journal or a chain really hands Parley.
enum Samples {
    static let alice = fixedKey(1)
    static let bob = fixedKey(2)

    static func fixedKey(_ byte: UInt8) -> SigningKey {
        // A 32-byte seed is always a valid Ed25519 seed.
        guard let key = try? SigningKey(seed: [UInt8](repeating: byte, count: SigningKey.seedByteCount)) else {
            preconditionFailure("a 32-byte seed is a valid Ed25519 seed")
        }
        return key
    }

    static let ethereumKeys: [EthereumSigningKey] = [3, 4].compactMap { byte in
        try? EthereumSigningKey(secret: SecretBytes(copying: [UInt8](repeating: byte, count: EthereumSigningKey.secretByteCount)))
    }

    static let params: ChannelParams? = try? ChannelParams(
        participants: [alice.publicKey, bob.publicKey], nonce: [UInt8](repeating: 7, count: ChannelParams.nonceBytes))

    static let ethereumParams: ChannelParams? = {
        guard ethereumKeys.count == 2, let domain = try? SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0xad, count: 20))
        else { return nil }
        return try? ChannelParams(
            participants: [alice.publicKey, bob.publicKey], signers: ethereumKeys.map { .ethereum($0.address) },
            nonce: [UInt8](repeating: 9, count: ChannelParams.nonceBytes), challengeDuration: 3600, domain: domain)
    }()

    /// Version `version` of `params`'s channel, paying `moved` from the first seat to the second.
    static func state(_ params: ChannelParams, version: UInt64, moved: UInt64 = 0, final: Bool = false, appData: [UInt8] = []) -> ChannelState {
        ChannelState(
            channelID: params.id, version: version, allocation: Allocation(Amount(1_000 - moved), Amount(1_000 + moved)),
            appData: appData, isFinal: final)
    }

    /// `state` signed by both seats with the keys of its channel's backend.
    static func signed(_ params: ChannelParams, _ state: ChannelState) -> SignedState {
        SignedState(state: state, signatures: [0, 1].map { params.sign(state, with: signer(params, $0)) })
    }

    /// The key that signs for `seat` (0 or 1) of `params`: secp256k1 on Ethereum channels.
    static func signer(_ params: ChannelParams, _ seat: Int) -> any StateSigner {
        if params.signer(.first).backend == .ethereum, ethereumKeys.count == 2 { return ethereumKeys[seat] }
        return seat == 0 ? alice : bob
    }

    static var allParams: [ChannelParams] { [params, ethereumParams].compactMap { $0 } }
}
