import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyJournal
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire
import Synchronization

/// The embedded chain, a devchain daemon, or the local EVM, with one adapter per key.
struct DemoChain: Sendable {
    let name: String
    private let adapters: [PublicKey: any SettlementAdapter & DevFaucet]
    private let local: LocalChain?
    private let timekeeper: DevchainClient?
    private let evm: LocalEVM?

    static func make(_ devchain: String?, evm: Bool = false, keys: [SigningKey], loop: EventLoop) async throws -> DemoChain {
        if evm { return try await makeEVM(keys: keys) }
        guard let devchain else {
            let chain = LocalChain()
            return DemoChain(
                name: "embedded LocalChain", adapters: Dictionary(uniqueKeysWithValues: keys.map { ($0.publicKey, chain.adapter(for: $0.publicKey)) }),
                local: chain, timekeeper: nil, evm: nil)
        }
        let address = devchain.hasPrefix("devchain://") ? devchain : "devchain://" + devchain
        var adapters: [PublicKey: any SettlementAdapter & DevFaucet] = [:]
        for key in keys {
            do { adapters[key.publicKey] = try await DevchainClient.connect(to: address, identity: key, loop: loop) } catch {
                throw DemoFailure("cannot reach the devchain at \(devchain): \(error)")
            }
        }
        let timekeeper = try await DevchainClient.connect(to: address, identity: SigningKey(), loop: loop)
        return DemoChain(name: "devchain at \(devchain)", adapters: adapters, local: nil, timekeeper: timekeeper, evm: nil)
    }

    /// The local EVM with the adjudicator holding the development token; each key's
    /// settlement address gets ether for gas.
    private static func makeEVM(keys: [SigningKey]) async throws -> DemoChain {
        let evm: LocalEVM
        do { evm = try LocalEVM.start() } catch { throw DemoFailure("\(error)") }
        guard let deployer = evm.accounts.first else { throw DemoFailure("the local EVM has no funded accounts") }
        var options = EthereumChainOptions()
        options.pollInterval = .milliseconds(50)
        let deployment = try await EthereumDeployer.deploy(endpoint: evm.endpoint, key: deployer.key, asset: .devToken, options: options)
        options.fromBlock = deployment.block
        let chain = EthereumChain(endpoint: evm.endpoint, adjudicator: deployment.adjudicator, options: options)
        var adapters: [PublicKey: any SettlementAdapter & DevFaucet] = [:]
        for key in keys {
            try await evm.setBalance(key.settlementKey.address, wei: Amount(UInt128(1_000) * 1_000_000_000_000_000_000))
            adapters[key.publicKey] = chain.adapter(for: key.publicKey, key: key.settlementKey)
        }
        return DemoChain(
            name: "local EVM at \(evm.endpoint.absoluteString) (adjudicator \(deployment.adjudicator), development token)",
            adapters: adapters, local: nil, timekeeper: nil, evm: evm)
    }

    func adapter(for key: SigningKey) -> any SettlementAdapter & DevFaucet {
        adapters[key.publicKey]!  // every key the demo uses was given to `make`
    }

    /// The peer's settlement address on chains whose channels sign with Ethereum keys.
    func peerSigner(_ key: SigningKey) -> SettlementAddress? {
        evm == nil ? nil : key.settlementKey.settlementAddress
    }

    /// Lets `seconds` of chain time pass: at once on the embedded chain, a manual-time
    /// devchain or the local EVM, by waiting on a devchain whose clock follows the wall clock.
    func pass(_ seconds: UInt64) async throws {
        if let local {
            local.advance(by: seconds)
        } else if let evm {
            try await evm.increaseTime(seconds)
        } else if let timekeeper {
            do { _ = try await timekeeper.advance(by: seconds) } catch {
                try await Task.sleep(for: .seconds(Int(seconds)))
            }
        }
    }

    func close() async {
        for adapter in adapters.values { await (adapter as? DevchainClient)?.close() }
        await timekeeper?.close()
        evm?.stop()
    }
}
