import Foundation
import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire

/// What the adjudicator holds: native ether, an ERC-20 token, or a fresh development token
/// anyone may mint (`Contracts/dev/DevToken.vy`, for tests, drills and demos).
public enum DeploymentAsset: Sendable, Equatable {
    case ether
    case token(EthereumAddress)
    case devToken
}

/// Where a deployment of Parley's contracts lives: everything a node needs to settle there.
public struct AdjudicatorDeployment: Sendable, Equatable, Codable {
    public let chainID: UInt64
    public let adjudicator: EthereumAddress
    /// The ERC-20 the adjudicator holds; nil for native ether.
    public let token: EthereumAddress?
    /// The app rule contracts by app id.
    public let apps: [String: EthereumAddress]
    /// The block the adjudicator was created in: event scans start there.
    public let block: UInt64
    /// Gas each creation used, by contract name.
    public let gasUsed: [String: UInt64]
}

extension EthereumAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try EthereumAddress(hex: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

public enum EthereumDeployer {
    /// Deploys the app rules (counter, tic-tac-toe), the development token when asked, and
    /// the adjudicator registering those apps; `key` pays. Waits for each receipt.
    public static func deploy(
        endpoint: URL, key: EthereumSigningKey, asset: DeploymentAsset, options: EthereumChainOptions = EthereumChainOptions()
    ) async throws(SettlementError) -> AdjudicatorDeployment {
        // The sender needs no adjudicator: a placeholder address serves until there is one.
        let placeholder = (try? EthereumAddress(bytes: [UInt8](repeating: 0, count: 20)))!
        let chain = EthereumChain(endpoint: endpoint, adjudicator: placeholder, options: options)
        let sender = chain.sender(for: key)
        var gas: [String: UInt64] = [:]
        func create(_ name: String, _ bytecode: String, _ arguments: [ABIValue] = []) async throws(SettlementError) -> (EthereumAddress, UInt64) {
            guard let code = Hex.decode(String(bytecode.dropFirst(2))) else { throw .transport("the \(name) bytecode is not hex") }
            do {
                let receipt = try await sender.send(to: nil, data: code + ABI.encode(arguments))
                guard let address = receipt.contractAddress else { throw SettlementError.transport("\(name) was not created") }
                gas[name] = receipt.gasUsed
                return (address, receipt.block)
            } catch let error as SettlementError {
                throw error
            } catch {
                throw .transport("deploying \(name) failed: \(error)")
            }
        }
        let (counter, _) = try await create("CounterApp", ContractArtifacts.counterAppBytecode)
        let (ticTacToe, _) = try await create("TicTacToe", ContractArtifacts.ticTacToeBytecode)
        var token: EthereumAddress?
        switch asset {
        case .ether: token = nil
        case let .token(address):
            // A token address without code would take every deposit for free (a call to
            // an empty account succeeds and returns nothing).
            let code: JSONValue
            do { code = try await chain.rpc.call("eth_getCode", [.string(address.description), .string("latest")]) } catch {
                throw .transport(error.description)
            }
            guard let text = code.string, text.count > 2 else {
                throw .transport("no contract at the token address \(address) on this chain")
            }
            token = address
        case .devToken: token = try await create("DevToken", ContractArtifacts.devTokenBytecode).0
        }
        let apps: [String: EthereumAddress] = ["test.counter/1": counter, "parley.tictactoe/1": ticTacToe]
        let entries: [ABIValue] = apps.sorted { $0.key < $1.key }.map { id, address in
            .tuple([.fixedBytes(Keccak256.hash(Array(id.utf8)).bytes), .address(address.bytes)])
        }
        let (adjudicator, block) = try await create(
            "Adjudicator", ContractArtifacts.adjudicatorBytecode, [.address((token ?? placeholder).bytes), .array(entries)])
        let chainID: UInt64
        do { chainID = try await chain.chainID() } catch { throw .transport(error.description) }
        return AdjudicatorDeployment(chainID: chainID, adjudicator: adjudicator, token: token, apps: apps, block: block, gasUsed: gas)
    }
}
