import ArgumentParser
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyNode
import ParleyTransport
import ParleyWire

/// What every command that runs a long-lived node needs (`parley node`, `parley play`):
/// a key, a listening address, a journal and a devchain.
struct NodeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Our signing key (a `parley keygen` file).", valueName: "file"))
    var key: String

    @Option(name: .long, help: ArgumentHelp("Where peers dial us; port 0 picks a free port.", valueName: "host:port"))
    var listen: String

    @Option(name: .long, help: ArgumentHelp("Journal directory (created if missing; locked while running).", valueName: "dir"))
    var journal: String

    @Option(name: .long, help: ArgumentHelp("The `parley devchain` to settle on.", valueName: "devchain://host:port"))
    var chain: String

    @Option(
        name: .long,
        help: ArgumentHelp("Mint N units to our chain account at start (devchain faucet; for demos).", valueName: "N"))
    var mint: Amount = 0

    func validate() throws {
        do { _ = try SocketAddress(listen) } catch { throw ValidationError("--listen: \(error)") }
    }

    /// A node, its chain client and the loop they share.
    struct Running {
        let node: Node
        let chain: DevchainClient
        let loop: EventLoop
        let identity: SigningKey
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
        let client: DevchainClient
        do { client = try await DevchainClient.connect(to: chain, identity: identity, loop: loop) } catch {
            loop.shutdown()
            throw NodeStartFailure("--chain \(chain): \(error)")
        }
        do {
            if mint > 0 { _ = try await client.mint(mint, to: identity.publicKey) }
            let node = try await Node(
                identity: identity, listen: address, journal: journal, settlement: client, policy: policy,
                logger: Logger(label: label), apps: apps, loop: loop)
            return Running(node: node, chain: client, loop: loop, identity: identity)
        } catch {
            await client.close()
            loop.shutdown()
            throw NodeStartFailure("\(error)")
        }
    }
}

/// Why a node command could not start.
struct NodeStartFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
