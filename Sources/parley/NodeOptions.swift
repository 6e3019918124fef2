import Foundation
import ArgumentParser
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyWire

/// What every command that runs a long-lived node needs (`parley node`, `parley play`):
/// a key, a listening address, a journal and a chain: a devchain, or an EVM adjudicator
/// over JSON-RPC.
struct NodeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Our signing key (a `parley keygen` file).", valueName: "file"))
    var key: String

    @Option(name: .long, help: ArgumentHelp("Where peers dial us; port 0 picks a free port.", valueName: "host:port"))
    var listen: String

    @Option(name: .long, help: ArgumentHelp("Journal directory (created if missing; locked while running).", valueName: "dir"))
    var journal: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The chain to settle on: a `parley devchain` (devchain://…), or an Ethereum JSON-RPC endpoint (http://HOST:PORT) with --adjudicator.",
            valueName: "devchain://host:port | http://host:port"))
    var chain: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With an Ethereum --chain: the Parley adjudicator's address (from `parley evm deploy` or `parley evm devnet`).",
            valueName: "0x…"))
    var adjudicator: String?

    @Option(
        name: .long,
        help: ArgumentHelp("With an Ethereum --chain: the adjudicator's deployment block, where event scans start.", valueName: "N"))
    var fromBlock: UInt64 = 0

    @Option(
        name: .long,
        help: ArgumentHelp("With an Ethereum --chain: blocks a transaction needs before it counts (1: mined).", valueName: "N"))
    var confirmations: UInt64 = 1

    @Option(
        name: .long,
        help: ArgumentHelp("With an Ethereum --chain: how often to poll it for blocks, logs and receipts.", valueName: "ms"))
    var chainPollMs: Int = 500

    @Option(
        name: .long,
        help: ArgumentHelp("Top our chain account up to N units at start (devchain faucet, or a development token; for demos).", valueName: "N"))
    var mint: Amount = 0

    func validate() throws {
        do { _ = try SocketAddress(listen) } catch { throw ValidationError("--listen: \(error)") }
        if isEthereum {
            guard let adjudicator else {
                throw ValidationError("--chain \(chain) is an Ethereum endpoint: --adjudicator 0x… names the Parley adjudicator on it")
            }
            do { _ = try EthereumAddress(hex: adjudicator) } catch { throw ValidationError("--adjudicator: \(error)") }
            guard confirmations >= 1 else { throw ValidationError("--confirmations must be at least 1") }
            guard (1...60_000).contains(chainPollMs) else { throw ValidationError("--chain-poll-ms must be 1…60000") }
        } else if adjudicator != nil {
            throw ValidationError("--adjudicator applies only to an Ethereum --chain (http://HOST:PORT)")
        }
    }

    var isEthereum: Bool { chain.hasPrefix("http://") || chain.hasPrefix("https://") }

    /// A node, its chain adapter and the loop they share.
    struct Running: Sendable {
        let node: Node
        let chain: any SettlementAdapter & DevFaucet
        let loop: EventLoop
        let identity: SigningKey
        /// Closes the chain client (a devchain session; nothing for JSON-RPC).
        let closeChain: @Sendable () async -> Void
    }

    /// Loads the key, connects to the chain, mints, and starts the node on one event loop.
    /// Every failure is a message for the person who typed the command.
    func start(policy: NodePolicy, apps: [any AppRules] = [], label: String) async throws(NodeStartFailure) -> Running {
        let identity: SigningKey
        do { identity = try KeyFile.load(from: key) } catch { throw NodeStartFailure("\(error)") }
        let address: SocketAddress
        do { address = try SocketAddress(listen) } catch { throw NodeStartFailure("--listen: \(error)") }
        let loop: EventLoop
        do { loop = try EventLoop(name: label) } catch { throw NodeStartFailure("cannot start the event loop: \(error)") }
        let client: any SettlementAdapter & DevFaucet
        let closeChain: @Sendable () async -> Void
        if isEthereum {
            do {
                client = try await ethereumAdapter(identity: identity)
            } catch {
                loop.shutdown()
                throw error
            }
            closeChain = {}
        } else {
            let devchain: DevchainClient
            do { devchain = try await DevchainClient.connect(to: chain, identity: identity, loop: loop) } catch {
                loop.shutdown()
                throw NodeStartFailure("--chain \(chain): \(error)")
            }
            client = devchain
            closeChain = { await devchain.close() }
        }
        do {
            // Up to --mint, not --mint more on every start: a restarted node finds the money
            // of its earlier starts (less what it deposited) and tops it up.
            if mint > 0 {
                let have = try await client.balance(of: identity.publicKey)
                if have < mint { _ = try await client.mint(mint - have, to: identity.publicKey) }
            }
            let node = try await Node(
                identity: identity, listen: address, journal: journal, settlement: client, policy: policy,
                logger: Logger(label: label), apps: apps, loop: loop)
            return Running(node: node, chain: client, loop: loop, identity: identity, closeChain: closeChain)
        } catch {
            await closeChain()
            loop.shutdown()
            throw NodeStartFailure("\(error)")
        }
    }

    /// The EVM adapter for --chain http(s)://… --adjudicator 0x…, checked against the endpoint:
    /// it answers, and a contract is at the address.
    private func ethereumAdapter(identity: SigningKey) async throws(NodeStartFailure) -> EthereumAdapter {
        guard let url = URL(string: chain), let adjudicator, let address = try? EthereumAddress(hex: adjudicator) else {
            throw NodeStartFailure("--chain \(chain) is not a URL")
        }
        var options = EthereumChainOptions()
        options.fromBlock = fromBlock
        options.confirmations = confirmations
        options.pollInterval = .milliseconds(chainPollMs)
        let ethereum = EthereumChain(endpoint: url, adjudicator: address, options: options)
        do {
            let code = try await ethereum.rpc.call("eth_getCode", [.string(address.description), .string("latest")])
            guard let text = code.string, text.count > 2 else {
                throw NodeStartFailure("--adjudicator \(address): no contract there on \(chain) (deploy one with `parley evm deploy`)")
            }
            _ = try await ethereum.domain()
        } catch let error as NodeStartFailure {
            throw error
        } catch {
            throw NodeStartFailure("--chain \(chain): \(error)")
        }
        return ethereum.adapter(for: identity.publicKey, key: identity.settlementKey)
    }
}

/// Why a node command could not start.
struct NodeStartFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
