import Foundation
import ParleyCrypto
import ParleyEthereum
import ParleyLocks
import ParleyWire

/// A local EVM with Parley's contracts deployed: one per test that asks for it.
///
/// The devnet runs with a manual clock starting at 0 (`--manual-time --start-time 0`), so
/// chain time behaves as on the embedded chain: it moves only when a test advances it, and
/// the conformance scenarios' absolute times hold. Every key a test uses gets ether for gas.
public final class EVMFixture: Sendable {
    public let evm: LocalEVM
    public let deployment: AdjudicatorDeployment
    public let chain: EthereumChain

    /// The options tests use: fast polls, short deadlines.
    public static var testOptions: EthereumChainOptions {
        var options = EthereumChainOptions()
        options.pollInterval = .milliseconds(20)
        options.transactionTimeout = .seconds(30)
        options.resubmitAfter = .seconds(60)
        return options
    }

    public static var isAvailable: Bool { LocalEVM.isAvailable }

    /// One local EVM at a time in this test process: each is a CPU-bound Python process, and
    /// the suite's dozens of EVM cases started at once starved the timing-sensitive
    /// transport tests of both cores. A fixture holds the permit until it is released.
    static let permits = AsyncSemaphore(permits: 1)

    /// Starts the devnet, deploys (paid by its first account) and gives each of `keys`'
    /// settlement addresses 1,000 ether for gas.
    public static func start(
        asset: DeploymentAsset = .devToken, keys: [SigningKey] = [], manualTime: Bool = true
    ) async throws -> EVMFixture {
        await permits.acquire()
        let evm: LocalEVM
        do {
            // Waiting for the devnet's first line blocks a thread for seconds: not one of the
            // cooperative pool's (as many as cores), which the other tests' tasks need.
            evm = try await offPool { try LocalEVM.start(manualTime: manualTime, startTime: manualTime ? 0 : nil) }
        } catch {
            await permits.release()
            throw error
        }
        let deployment: AdjudicatorDeployment
        do {
            guard let deployer = evm.accounts.first, evm.accounts.count > 1 else {
                throw DevchainTestFailure("the local EVM has no funded accounts")
            }
            deployment = try await EthereumDeployer.deploy(
                endpoint: evm.endpoint, key: deployer.key, asset: asset, options: testOptions)
        } catch {
            _ = try? await offPool { evm.stop() }
            await permits.release()
            throw error
        }
        var options = testOptions
        options.fromBlock = deployment.block
        let chain = EthereumChain(
            endpoint: evm.endpoint, adjudicator: deployment.adjudicator, options: options, faucet: evm.accounts[1].key)
        let fixture = EVMFixture(evm: evm, deployment: deployment, chain: chain)
        for key in keys { try await fixture.fund(key) }
        return fixture
    }

    private init(evm: LocalEVM, deployment: AdjudicatorDeployment, chain: EthereumChain) {
        self.evm = evm
        self.deployment = deployment
        self.chain = chain
    }

    deinit {
        // Stopping waits up to 2 s for the devnet; a thread of its own does the waiting.
        let evm = self.evm
        Thread {
            evm.stop()
            Task { await EVMFixture.permits.release() }
        }.start()
    }

    public static let gasMoney = Amount(UInt128(1_000) * 1_000_000_000_000_000_000)

    /// Gives `key`'s settlement address ether for gas, and tells the chain its account.
    public func fund(_ key: SigningKey) async throws {
        try await evm.setBalance(key.settlementKey.address, wei: Self.gasMoney)
        chain.remember(key.publicKey, as: key.settlementKey.address)
    }

    public func adapter(for key: SigningKey) -> EthereumAdapter {
        chain.adapter(for: key.publicKey, key: key.settlementKey)
    }
}
