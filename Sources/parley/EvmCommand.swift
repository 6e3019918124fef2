import ArgumentParser
import Foundation
import ParleyCrypto
import ParleyEthereum
import ParleySubprocess
import ParleyWire

/// `parley evm`: the local EVM and deployments of Parley's contracts.
struct EvmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evm",
        abstract: "Run a local EVM with Parley's contracts, or deploy them to any Ethereum endpoint.",
        discussion: """
            Channels of the Ethereum backend settle on an EVM chain through Parley's Vyper \
            adjudicator (Docs/Ethereum.md). `parley evm devnet` starts the local EVM (py-evm \
            behind standard JSON-RPC, from `make evm-env`), deploys the contracts and funds the \
            settlement addresses of the key files you name; `parley evm deploy` deploys the \
            contracts to any endpoint, paid by a key file's settlement key. Either prints the \
            `parley node --chain … --adjudicator … --from-block …` options to settle there.

            Examples:
              parley evm devnet --port 8545 --fund alice.key --fund bob.key
              parley evm deploy --rpc http://127.0.0.1:8545 --key deployer.key --json
            """,
        subcommands: [EvmDevnetCommand.self, EvmDeployCommand.self])
}

/// What both subcommands print.
struct EvmDeploymentLine: Encodable {
    var rpc: String
    var chainId: UInt64
    var adjudicator: String
    var fromBlock: UInt64
    var token: String?
    var apps: [String: String]
    var nodeOptions: String

    init(rpc: String, deployment: AdjudicatorDeployment) {
        self.rpc = rpc
        chainId = deployment.chainID
        adjudicator = deployment.adjudicator.description
        fromBlock = deployment.block
        token = deployment.token?.description
        apps = deployment.apps.mapValues(\.description)
        nodeOptions = "--chain \(rpc) --adjudicator \(deployment.adjudicator) --from-block \(deployment.block)"
    }

    func print(json: Bool) throws {
        if json {
            try printJSON(self)
        } else {
            Swift.print("""
                Parley adjudicator \(adjudicator) on chain \(chainId) at \(rpc) (block \(fromBlock); \
                asset \(token.map { "token \($0)" } ?? "ether"))
                nodes settle here with: \(nodeOptions)
                """)
        }
        fflush(nil)
    }
}

enum AssetChoice: String, ExpressibleByArgument, CaseIterable {
    case ether
    case devToken = "dev-token"
}

struct EvmDevnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet",
        abstract: "Start the local EVM, deploy Parley's contracts, fund keys; runs until interrupted.",
        discussion: """
            Needs the Python environment `make evm-env` creates (.venv-evm). The devnet mines \
            one block per transaction, and one every --block-time seconds so that chain time \
            moves while nothing happens (the watcher's challenge windows are measured in it). \
            Each --fund KEYFILE gets 1,000 ether at its settlement address (`parley keygen \
            --show` prints it), and with --asset dev-token also 1,000,000 development tokens. \
            Stops on SIGINT or SIGTERM, or with --stop-on-eof when standard input ends.
            """)

    @Option(name: .long, help: "Port on 127.0.0.1 (0: a free one).")
    var port: UInt16 = 8545

    @Option(name: .long, help: "The chain id.")
    var chainId: UInt64 = 1337

    @Option(name: .long, help: ArgumentHelp("Mine an empty block every this many seconds.", valueName: "seconds"))
    var blockTime: Double = 1

    @Option(name: .long, help: "What channels hold: ether or dev-token (a token anyone may mint).")
    var asset: AssetChoice = .ether

    @Option(name: .long, help: ArgumentHelp("A key file whose settlement address gets ether (repeatable).", valueName: "file"))
    var fund: [String] = []

    @Flag(name: .long, help: "Print the deployment as one JSON object.")
    var json = false

    @Flag(name: .long, help: "Stop when standard input ends.")
    var stopOnEof = false

    func run() async throws {
        let keys: [SigningKey]
        do { keys = try fund.map { path throws(KeyFileError) in try KeyFile.load(from: path) } } catch {
            throw failure("\(error)")
        }
        let evm: LocalEVM
        do { evm = try LocalEVM.start(chainID: chainId, port: port, blockTime: blockTime > 0 ? blockTime : nil) } catch {
            throw failure("\(error)")
        }
        guard let deployer = evm.accounts.first else { throw failure("the local EVM has no funded accounts") }
        let deployment: AdjudicatorDeployment
        do {
            deployment = try await EthereumDeployer.deploy(
                endpoint: evm.endpoint, key: deployer.key, asset: asset == .ether ? .ether : .devToken)
            let chain = EthereumChain(endpoint: evm.endpoint, adjudicator: deployment.adjudicator)
            for key in keys {
                try await evm.setBalance(key.settlementKey.address, wei: Amount(UInt128(1_000) * 1_000_000_000_000_000_000))
                if asset == .devToken {
                    chain.remember(key.publicKey, as: key.settlementKey.address)
                    try await chain.adapter(for: key.publicKey, key: key.settlementKey).mint(1_000_000, to: key.publicKey)
                }
            }
        } catch {
            throw failure("\(error)")
        }
        try EvmDeploymentLine(rpc: evm.endpoint.absoluteString, deployment: deployment).print(json: json)
        if stopOnEof {
            for await _ in standardInputLines(threadName: "parley-evm-stdin") {}
        } else {
            // SIGINT/SIGTERM end this process; the devnet reads our end of its stdin and follows.
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        evm.stop()
    }

    private func failure(_ message: String) -> ExitCode {
        Terminal.writeError("parley evm devnet: \(message)\n")
        return ExitCode.failure
    }
}

struct EvmDeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Deploy Parley's adjudicator and app rules to an Ethereum endpoint.",
        discussion: """
            The key file's settlement key (its `parley keygen --show` 0x… address) pays for the \
            creations: the two app rule contracts and the adjudicator (about 4.3 million gas), \
            plus the development token with --asset dev-token. Prints the adjudicator's \
            address and the block to pass to `parley node` as --from-block.
            """)

    @Option(name: .long, help: ArgumentHelp("The JSON-RPC endpoint.", valueName: "http://host:port"))
    var rpc: String

    @Option(name: .long, help: ArgumentHelp("The key file that pays (its settlement key).", valueName: "file"))
    var key: String

    @Option(name: .long, help: ArgumentHelp("ether, dev-token, or an ERC-20's 0x… address.", valueName: "asset"))
    var asset: String = "ether"

    @Flag(name: .long, help: "Print the deployment as one JSON object.")
    var json = false

    func run() async throws {
        guard let url = URL(string: rpc), rpc.hasPrefix("http") else { throw failure("--rpc \(rpc) is not an http(s) URL") }
        let choice: DeploymentAsset
        switch asset {
        case "ether": choice = .ether
        case "dev-token": choice = .devToken
        default:
            do { choice = .token(try EthereumAddress(hex: asset)) } catch { throw failure("--asset: \(error)") }
        }
        do {
            let payer = try KeyFile.load(from: key)
            let deployment = try await EthereumDeployer.deploy(endpoint: url, key: payer.settlementKey, asset: choice)
            try EvmDeploymentLine(rpc: rpc, deployment: deployment).print(json: json)
        } catch let error as ExitCode {
            throw error
        } catch {
            throw failure("\(error)")
        }
    }

    private func failure(_ message: String) -> ExitCode {
        Terminal.writeError("parley evm deploy: \(message)\n")
        return ExitCode.failure
    }
}
