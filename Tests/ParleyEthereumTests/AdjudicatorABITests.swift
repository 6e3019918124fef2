import Foundation
import ParleyChannel
import ParleyCrypto
import Testing

@testable import ParleyEthereum

/// The Swift encoder and the compiled contract must agree on every selector and topic:
/// these read `Contracts/build/*.json` (what vyper produced) and compare.
@Suite struct AdjudicatorABITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func artifact(_ name: String) throws -> JSONValue {
        let data = try Data(contentsOf: root.appendingPathComponent("Contracts/build/\(name).json"))
        return try JSONDecoder().decode(JSONValue.self, from: data)
    }

    static func selector(_ name: String, in artifact: JSONValue) throws -> [UInt8] {
        guard case let .object(methods)? = artifact["methodIdentifiers"],
            let entry = methods.first(where: { $0.key.hasPrefix(name + "(") })?.value.string,
            // vyper writes the selector as a number: "0x95ea7b3" is 0x095ea7b3.
            let bytes = Hex.decode(String(repeating: "0", count: max(0, 10 - entry.count)) + entry.dropFirst(2))
        else { throw ABITestFailure("no method \(name) in the compiled ABI") }
        return bytes
    }

    @Test func everyCallSelectorMatchesTheCompiledAdjudicator() throws {
        let adjudicator = try Self.artifact("Adjudicator")
        let expected: [(String, [UInt8])] = [
            ("deposit", AdjudicatorABI.deposit), ("reclaim", AdjudicatorABI.reclaim), ("withdraw", AdjudicatorABI.withdraw),
            ("register", AdjudicatorABI.register), ("progress", AdjudicatorABI.progress),
            ("conclude", AdjudicatorABI.conclude), ("channels", AdjudicatorABI.channels), ("token", AdjudicatorABI.token),
        ]
        for (name, selector) in expected {
            #expect(try Self.selector(name, in: adjudicator) == selector, "selector of \(name)")
        }
        let token = try Self.artifact("DevToken")
        for (name, selector) in [
            ("balanceOf", AdjudicatorABI.balanceOf), ("allowance", AdjudicatorABI.allowance),
            ("approve", AdjudicatorABI.approve), ("mint", AdjudicatorABI.mint),
        ] {
            #expect(try Self.selector(name, in: token) == selector, "selector of \(name)")
        }
    }

    /// Event signatures rebuilt from the ABI's input types hash to the topics the decoder matches.
    @Test func everyEventTopicMatchesTheCompiledAdjudicator() throws {
        guard let abi = try Self.artifact("Adjudicator")["abi"]?.array else { throw ABITestFailure("no abi") }
        var topics: [String: Digest] = [:]
        for entry in abi where entry["type"]?.string == "event" {
            guard let name = entry["name"]?.string, let inputs = entry["inputs"]?.array else { continue }
            let types = inputs.compactMap { $0["type"]?.string }.joined(separator: ",")
            topics[name] = Keccak256.hash(Array("\(name)(\(types))".utf8))
        }
        typealias Topic = AdjudicatorABI.Topic
        #expect(topics["Opened"] == Topic.opened)
        #expect(topics["Deposited"] == Topic.deposited)
        #expect(topics["Funded"] == Topic.funded)
        #expect(topics["Registered"] == Topic.registered)
        #expect(topics["Progressed"] == Topic.progressed)
        #expect(topics["Concluded"] == Topic.concluded)
        #expect(topics["Withdrawn"] == Topic.withdrawn)
        #expect(topics["Reclaimed"] == Topic.reclaimed)
        #expect(topics.count == Topic.all.count)
    }

    @Test func theCommittedBytecodeIsTheCompiledOne() throws {
        for (name, bytecode) in [
            ("Adjudicator", ContractArtifacts.adjudicatorBytecode), ("CounterApp", ContractArtifacts.counterAppBytecode),
            ("TicTacToe", ContractArtifacts.ticTacToeBytecode), ("DevToken", ContractArtifacts.devTokenBytecode),
        ] {
            #expect(try Self.artifact(name)["bytecode"]?.string == bytecode, "\(name)")
        }
    }

    /// Hostile or broken answers get a typed error naming the field, never a crash.
    @Test func truncatedOrOversizedEventDataIsRefusedByName() throws {
        let channel = try Digest(bytes: [UInt8](repeating: 0xab, count: 32))
        let domain = try SettlementDomainFixture.domain()
        #expect(throws: EthereumRPCError.badAnswer("ABI data too short for version")) {
            _ = try AdjudicatorABI.decode(topics: [AdjudicatorABI.Topic.registered, channel], data: [], domain: domain)
        }
        // An app-data length past the contract's limit.
        var data = [UInt8](repeating: 0, count: 32 * 9)
        data[32 * 5 + 31] = 7 * 32  // offset of the app data
        data[32 * 7 + 30] = 0x10  // length 4096
        #expect(throws: EthereumRPCError.badAnswer("app data is 4096 bytes, more than 1024")) {
            _ = try AdjudicatorABI.decode(topics: [AdjudicatorABI.Topic.registered, channel], data: data, domain: domain)
        }
        // A seat that is neither 0 nor 1.
        var deposit = [UInt8](repeating: 0, count: 96)
        deposit[31] = 2
        #expect(throws: EthereumRPCError.badAnswer("a seat is 0 or 1")) {
            _ = try AdjudicatorABI.decode(topics: [AdjudicatorABI.Topic.deposited, channel], data: deposit, domain: domain)
        }
        // An amount above 128 bits.
        var big = [UInt8](repeating: 0, count: 96)
        big[32 + 15] = 1
        #expect(throws: EthereumRPCError.badAnswer("amount does not fit in 128 bits")) {
            _ = try AdjudicatorABI.decode(topics: [AdjudicatorABI.Topic.deposited, channel], data: big, domain: domain)
        }
        // Someone else's event is not ours.
        #expect(try AdjudicatorABI.decode(topics: [channel, channel], data: [], domain: domain) == nil)
    }
}

struct ABITestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum SettlementDomainFixture {
    static func domain() throws -> SettlementDomain {
        try SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20))
    }
}
