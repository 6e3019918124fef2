import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyEthereum
import ParleySettlement
import ParleyTestSupport
import ParleyWire
import Testing

/// Gas on the local EVM (real py-evm gas accounting, Prague rules), read from receipts, for
/// the table in Docs/Ethereum.md: a figure more than 10 % above its row fails, and so does
/// a missed target. Run alone to print the table:
/// `swift test --filter GasTests` (Docs/Ethereum.md, "Gas").
@Suite(.enabled(if: EVMFixture.isAvailable, "needs the local EVM: make evm-env"), .serialized)
struct GasTests {
    static let alice = key(11)
    static let bob = key(12)

    static func key(_ n: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    struct Channel {
        let params: ChannelParams
        let a: EthereumAdapter
        let b: EthereumAdapter

        func signed(_ state: ChannelState) -> SignedState {
            SignedState(
                state: state,
                signatures: [
                    params.sign(state, with: GasTests.alice.stateSigner(for: .ethereum)),
                    params.sign(state, with: GasTests.bob.stateSigner(for: .ethereum)),
                ])
        }

        func state(_ version: UInt64, _ balances: Allocation, appData: [UInt8] = [], final: Bool = false) -> ChannelState {
            ChannelState(channelID: params.id, version: version, allocation: balances, appData: appData, isFinal: final)
        }
    }

    static func channel(_ fixture: EVMFixture, nonce: UInt8, app: AppID = .payment) async throws -> Channel {
        let params = try ChannelParams(
            participants: [alice.publicKey, bob.publicKey],
            signers: [alice, bob].map { $0.settlementKey.settlementAddress }, nonce: [UInt8](repeating: nonce, count: 32),
            challengeDuration: 60, appID: app, domain: try await fixture.chain.domain())
        return Channel(params: params, a: fixture.adapter(for: alice), b: fixture.adapter(for: bob))
    }

    /// The gas of the last transaction of `operation` the chain recorded.
    static func last(_ fixture: EVMFixture, _ operation: String) throws -> UInt64 {
        try #require(fixture.chain.gasRecords.last { $0.operation == operation }?.gasUsed)
    }

    /// Every figure of the table, measured on native-ether channels.
    static func measure() async throws -> [String: UInt64] {
        let fixture = try await EVMFixture.start(asset: .ether, keys: [alice, bob])
        var gas: [String: UInt64] = ["deploy": try #require(fixture.deployment.gasUsed["Adjudicator"])]
        let opening = Allocation(1_000_000, 500_000)

        // Sad exit: deposits, register, a refutation, conclude, both withdrawals.
        let sad = try await channel(fixture, nonce: 1)
        try await sad.a.deposit(params: sad.params, opening: opening, participant: .first, amount: opening[.first])
        gas["deposit (first)"] = try last(fixture, "deposit")
        try await sad.b.deposit(params: sad.params, opening: opening, participant: .second, amount: opening[.second])
        gas["deposit (funding)"] = try last(fixture, "deposit")
        try await sad.a.register(sad.signed(sad.state(3, Allocation(900_000, 600_000))))
        gas["register"] = try last(fixture, "register")
        try await sad.b.register(sad.signed(sad.state(5, Allocation(800_000, 700_000))))
        gas["refute"] = try last(fixture, "register")
        try await fixture.evm.increaseTime(60)
        try await sad.a.conclude(sad.params.id)
        gas["conclude"] = try last(fixture, "conclude")
        try await sad.a.withdraw(sad.params.id, participant: .first)
        gas["withdraw"] = try last(fixture, "withdraw")
        try await sad.b.withdraw(sad.params.id, participant: .second)
        let secondWithdraw = try last(fixture, "withdraw")
        gas["sad exit"] = gas["register"]! + gas["conclude"]! + gas["withdraw"]! + secondWithdraw

        // Cooperative close: the final state registered concludes and pays both seats in
        // that one transaction; no withdrawals follow.
        let happy = try await channel(fixture, nonce: 2)
        try await happy.a.deposit(params: happy.params, opening: opening, participant: .first, amount: opening[.first])
        try await happy.b.deposit(params: happy.params, opening: opening, participant: .second, amount: opening[.second])
        let events = try await happy.a.register(happy.signed(happy.state(9, Allocation(700_000, 800_000), final: true)))
        #expect(events.filter { if case .withdrawn = $0.kind { true } else { false } }.count == 2)
        gas["cooperative close"] = try last(fixture, "register")

        // Progress on a counter channel: registered at 0, seat 0 moves.
        let game = try await channel(fixture, nonce: 3, app: try AppID("test.counter/1"))
        try await game.a.deposit(params: game.params, opening: opening, participant: .first, amount: opening[.first])
        try await game.b.deposit(params: game.params, opening: opening, participant: .second, amount: opening[.second])
        try await game.a.register(game.signed(game.state(4, opening, appData: [4])))
        gas["register (app)"] = try last(fixture, "register")
        let next = game.state(5, opening, appData: [5])
        try await game.a.progress(game.params.id, to: next, moverSignature: game.params.sign(next, with: alice.stateSigner(for: .ethereum)))
        gas["progress"] = try last(fixture, "progress")
        return gas
    }

    /// The rows of the table between `<!-- gas-table -->` markers in Docs/Ethereum.md.
    static func documented() throws -> [String: UInt64] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Docs/Ethereum.md"), encoding: .utf8)
        let parts = text.components(separatedBy: "<!-- gas-table -->")
        guard parts.count >= 3 else { throw ABITestFailure("Docs/Ethereum.md has no <!-- gas-table --> section") }
        var rows: [String: UInt64] = [:]
        for line in parts[1].split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, let value = UInt64(cells[1].replacingOccurrences(of: ",", with: "")) else { continue }
            rows[cells[0]] = value
        }
        return rows
    }

    @Test func gasStaysWithinTheDocumentedTableAndTheTargets() async throws {
        let measured = try await Self.measure()
        let table = measured.sorted { $0.key < $1.key }.map { "| \($0.key) | \($0.value.formatted()) |" }.joined(separator: "\n")
        print("gas measured on the local EVM:\n\(table)")
        let documented = try Self.documented()
        for (operation, gas) in measured {
            let row = try #require(documented[operation], "Docs/Ethereum.md has no gas row for \(operation)")
            #expect(gas * 10 <= row * 11, "\(operation) used \(gas) gas, more than 10 % above the documented \(row)")
        }
        // The targets (go-nitro's challenge + transfer for the sad exit).
        #expect(try #require(measured["sad exit"]) <= 195_000)
        #expect(try #require(measured["refute"]) <= 70_000)
        #expect(try #require(measured["cooperative close"]) <= 120_000)
    }
}

