import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleySettlement
import ParleyTransport
import ParleyWire

/// The chain a game server or its clients settle on, named by one string:
///
/// - `devchain://[pk1…@]HOST:PORT`: a `parley devchain`;
/// - `http://HOST:PORT#0xADJUDICATOR@BLOCK`: Parley's adjudicator on an Ethereum endpoint,
///   deployed at BLOCK. Channels there are Ethereum-backend: the opener names the server's
///   settlement address (`serverSigner`).
struct GameChain: Sendable {
    let adapter: any SettlementAdapter & DevFaucet
    let close: @Sendable () async -> Void
    /// The identity's settlement address when channels sign with Ethereum keys.
    let ethereumSigner: EthereumAddress?

    /// `fundGas`: on an Ethereum development chain, give the identity's account ether for gas
    /// (`anvil_setBalance`, which the local EVM, anvil and hardhat serve).
    static func connect(_ spec: String, identity: SigningKey, loop: EventLoop, fundGas: Bool = false) async throws -> GameChain {
        guard spec.hasPrefix("http://") || spec.hasPrefix("https://") else {
            let client = try await DevchainClient.connect(to: spec, identity: identity, loop: loop)
            return GameChain(adapter: client, close: { await client.close() }, ethereumSigner: nil)
        }
        guard let hash = spec.firstIndex(of: "#"), let at = spec[hash...].firstIndex(of: "@"),
            let url = URL(string: String(spec[..<hash])), let block = UInt64(spec[spec.index(after: at)...])
        else { throw GameServerFailure("an Ethereum chain is named http://HOST:PORT#0xADJUDICATOR@BLOCK, not \(spec)") }
        let adjudicator = try EthereumAddress(hex: String(spec[spec.index(after: hash)..<at]))
        var options = EthereumChainOptions()
        options.fromBlock = block
        options.pollInterval = .milliseconds(50)
        let chain = EthereumChain(endpoint: url, adjudicator: adjudicator, options: options)
        let key = identity.settlementKey
        if fundGas {
            _ = try await chain.rpc.call(
                "anvil_setBalance", [.string(key.address.description), .string("0x3635c9adc5dea00000")])  // 1,000 ether
        }
        return GameChain(adapter: chain.adapter(for: identity.publicKey, key: key), close: {}, ethereumSigner: key.address)
    }
}
