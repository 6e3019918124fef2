import Foundation
import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTestSupport
import ParleyWire
import Testing

@testable import ParleyEthereum

#if canImport(Glibc)
    import Glibc
#endif

/// What the conformance suite does not reach: native ether, hostile signatures and params
/// sent straight to the contract, a payee that refuses money, reorganisations, and an
/// endpoint that stops answering.
@Suite(.enabled(if: EVMFixture.isAvailable, "needs the local EVM: make evm-env"))
struct EthereumAdapterTests {
    static let alice = key(21)
    static let bob = key(22)
    static let mallory = key(23)

    static func key(_ n: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    struct Channel {
        let fixture: EVMFixture
        let params: ChannelParams
        let opening: Allocation
        var a: EthereumAdapter { fixture.adapter(for: EthereumAdapterTests.alice) }
        var b: EthereumAdapter { fixture.adapter(for: EthereumAdapterTests.bob) }

        func state(_ version: UInt64, _ balances: Allocation, final: Bool = false) -> ChannelState {
            ChannelState(channelID: params.id, version: version, allocation: balances, isFinal: final)
        }

        func signed(_ state: ChannelState) -> SignedState {
            SignedState(
                state: state,
                signatures: [
                    params.sign(state, with: EthereumAdapterTests.alice.stateSigner(for: .ethereum)),
                    params.sign(state, with: EthereumAdapterTests.bob.stateSigner(for: .ethereum)),
                ])
        }

        func fund() async throws {
            try await a.deposit(params: params, opening: opening, participant: .first, amount: opening[.first])
            try await b.deposit(params: params, opening: opening, participant: .second, amount: opening[.second])
        }
    }

    static func channel(
        asset: DeploymentAsset = .ether, opening: Allocation = Allocation(1_000_000, 500_000), manualTime: Bool = true
    ) async throws -> Channel {
        let fixture = try await EVMFixture.start(asset: asset, keys: [alice, bob, mallory], manualTime: manualTime)
        let params = try ChannelParams(
            participants: [alice.publicKey, bob.publicKey], signers: [alice, bob].map { $0.settlementKey.settlementAddress },
            nonce: [UInt8](repeating: 9, count: 32), challengeDuration: 60, domain: try await fixture.chain.domain())
        return Channel(fixture: fixture, params: params, opening: opening)
    }

    /// What `address` paid in fees for the transactions this process sent through the chain.
    static func fees(_ fixture: EVMFixture, of address: EthereumAddress) -> Amount {
        fixture.chain.gasRecords.filter { $0.sender == address }.reduce(Amount.zero) { $0 + $1.fee }
    }

    @Test func etherDepositsAndPayoutsAddUpToTheWeiWithFeesCounted() async throws {
        let c = try await Self.channel()
        let a = Self.alice.settlementKey.address
        let b = Self.bob.settlementKey.address
        let before = (try await c.fixture.chain.balance(of: a), try await c.fixture.chain.balance(of: b))
        try await c.fund()
        let events = try await c.a.register(c.signed(c.state(7, Allocation(400_000, 1_100_000), final: true)))
        #expect(events.map(\.kind).suffix(2) == [
            .withdrawn(participant: .first, amount: 400_000), .withdrawn(participant: .second, amount: 1_100_000),
        ])
        let after = (try await c.fixture.chain.balance(of: a), try await c.fixture.chain.balance(of: b))
        #expect(after.0 == before.0 - 1_000_000 + 400_000 - Self.fees(c.fixture, of: a))
        #expect(after.1 == before.1 - 500_000 + 1_100_000 - Self.fees(c.fixture, of: b))
        // The contract holds nothing any more.
        let held = try Quantity.amount(
            try await c.fixture.evm.rpc.call("eth_getBalance", [.string(c.fixture.deployment.adjudicator.description), .string("latest")]),
            "adjudicator balance")
        #expect(held == .zero)
    }

    /// An address with code that reverts on receipt (as EIP-7702 delegation allows an EOA)
    /// cannot block the other seat's cooperative close: its payout waits to be withdrawn.
    @Test func aPayeeThatRefusesEtherCannotBlockTheOtherSeatsClose() async throws {
        let c = try await Self.channel()
        try await c.fund()
        let bobAddress = Self.bob.settlementKey.address
        // PUSH1 0 PUSH1 0 REVERT
        _ = try await c.fixture.evm.rpc.call("anvil_setCode", [.string(bobAddress.description), .string("0x60006000fd")])
        let events = try await c.a.register(c.signed(c.state(3, Allocation(300_000, 1_200_000), final: true)))
        #expect(events.map(\.kind).last == .withdrawn(participant: .first, amount: 300_000))
        #expect(!events.contains { $0.kind == .withdrawn(participant: .second, amount: 1_200_000) })
        let onChain = try #require(try await c.a.channel(c.params.id))
        #expect(onChain.phase == .concluded && onChain.withdrawn == [.first])
        // Once the address takes money again, the seat withdraws its payout.
        _ = try await c.fixture.evm.rpc.call("anvil_setCode", [.string(bobAddress.description), .string("0x")])
        let paid = try await c.b.withdraw(c.params.id, participant: .second)
        #expect(paid.map(\.kind) == [.withdrawn(participant: .second, amount: 1_200_000)])
        #expect(try await c.a.channel(c.params.id)?.phase == .withdrawn)
    }

    /// The contract itself refuses what the Swift types never let a node build.
    @Test func highSSignaturesAndZeroSignersAreRefusedByTheContract() async throws {
        let c = try await Self.channel()
        try await c.fund()
        let state = c.state(2, Allocation(900_000, 600_000))
        let signed = c.signed(state)
        guard case let .ethereum(good)? = signed[.first] else { throw ABITestFailure("no Ethereum signature") }
        // The same signature with s' = n - s and v flipped recovers the same key (malleability).
        let n: [UInt8] = Hex.decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141") ?? []
        var s = Array(good.bytes[32..<64])
        var borrow = 0
        for index in stride(from: 31, through: 0, by: -1) {
            let value = Int(n[index]) - Int(s[index]) - borrow
            s[index] = UInt8((value + 256) % 256)
            borrow = value < 0 ? 1 : 0
        }
        let flippedV: UInt8 = good.bytes[64] == 27 ? 28 : 27
        let malleable = ABIValue.tuple([.uint(UInt64(flippedV)), .fixedBytes(Array(good.bytes[0..<32])), .fixedBytes(s)])
        let data = AdjudicatorABI.call(
            AdjudicatorABI.register,
            [AdjudicatorABI.params(c.params), AdjudicatorABI.state(state), .fixedArray([malleable, AdjudicatorABI.signature(signed[.second])])])
        let reason = await Self.revertReason(c.fixture, data, from: Self.alice.settlementKey.address)
        #expect(reason == "badSignature0")

        // Params naming the zero address as a seat's signer: ecrecover's answer to garbage.
        let zero = ABIValue.tuple([
            .fixedArray(c.params.participants.map { .fixedBytes($0.bytes) }),
            .fixedArray([.address(Self.alice.settlementKey.address.bytes), .address([UInt8](repeating: 0, count: 20))]),
            .fixedBytes([UInt8](repeating: 1, count: 32)), .uint(60), .string("parley.payment/1"),
        ])
        let deposit = AdjudicatorABI.call(AdjudicatorABI.deposit, [zero, .fixedArray([.amount(10), .amount(0)]), .uint(0), .amount(10)])
        #expect(await Self.revertReason(c.fixture, deposit, from: Self.alice.settlementKey.address, value: 10) == "notAParticipant")
        // A seat number past 1.
        let seat2 = AdjudicatorABI.call(
            AdjudicatorABI.deposit, [AdjudicatorABI.params(c.params), .fixedArray([.amount(10), .amount(0)]), .uint(2), .amount(10)])
        #expect(await Self.revertReason(c.fixture, seat2, from: Self.alice.settlementKey.address, value: 10) == "notAParticipant")
        // Ether sent with a deposit that names another amount.
        let other = try ChannelParams(
            participants: c.params.participants, signers: c.params.signers, nonce: [UInt8](repeating: 2, count: 32),
            challengeDuration: 60, domain: c.params.domain)
        let mismatched = AdjudicatorABI.call(
            AdjudicatorABI.deposit, [AdjudicatorABI.params(other), .fixedArray([.amount(10), .amount(0)]), .uint(0), .amount(10)])
        #expect(await Self.revertReason(c.fixture, mismatched, from: Self.alice.settlementKey.address, value: 9) == "wrongValue")
    }

    /// Found by `game-server --load --evm`: two token deposits of one account at once both
    /// read the old allowance, approved the same amount, and the second `transferFrom` found
    /// the approval spent. And transactions of one account sent at once each need a nonce,
    /// and may reach the node out of order ("nonce too high" from the local EVM, which does
    /// not queue future nonces: the sender sends it again once the lower one is in).
    @Test func concurrentTransactionsOfOneAccountAllGoThrough() async throws {
        let fixture = try await EVMFixture.start(asset: .devToken, keys: [Self.alice, Self.bob])
        let domain = try await fixture.chain.domain()
        let a = fixture.adapter(for: Self.alice)
        try await a.mint(1_000, to: Self.alice.publicKey)
        let opening = Allocation(100, 0)
        let channels = try (1...4).map { nonce in
            try ChannelParams(
                participants: [Self.alice.publicKey, Self.bob.publicKey],
                signers: [Self.alice, Self.bob].map { $0.settlementKey.settlementAddress },
                nonce: [UInt8](repeating: nonce, count: 32), challengeDuration: 60, domain: domain)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for params in channels {
                group.addTask { try await a.deposit(params: params, opening: opening, participant: .first, amount: 100) }
            }
            for _ in 0..<8 {
                group.addTask { try await a.mint(1, to: Self.alice.publicKey) }
            }
            try await group.waitForAll()
        }
        for params in channels {
            #expect(try await a.channel(params.id)?.isFunded == true)
        }
        #expect(try await a.balance(of: Self.alice.publicKey) == 1_000 - 400 + 8)
    }

    /// Found in review: anyone may deposit into a channel of any terms, including an app id
    /// that is not UTF-8. Its `Opened` log must be skipped, not fail the poll: a watcher
    /// that stops hearing events would let a stale registration through unrefuted.
    @Test func aHostileOpenedLogDoesNotStopTheEventStream() async throws {
        let c = try await Self.channel()
        let stream = c.a.events(after: 0)
        // Mallory's channel: seat 0 is Mallory, the app id is the bytes ff fe.
        let hostile = ABIValue.tuple([
            .fixedArray([.fixedBytes([UInt8](repeating: 1, count: 32)), .fixedBytes([UInt8](repeating: 2, count: 32))]),
            .fixedArray([.address(Self.mallory.settlementKey.address.bytes), .address(Self.bob.settlementKey.address.bytes)]),
            .fixedBytes([UInt8](repeating: 3, count: 32)), .uint(60), .bytes([0xff, 0xfe]),
        ])
        let data = AdjudicatorABI.call(AdjudicatorABI.deposit, [hostile, .fixedArray([.amount(1), .amount(0)]), .uint(0), .amount(1)])
        let receipt = try await c.fixture.chain.sender(for: Self.mallory.settlementKey)
            .send(to: c.fixture.deployment.adjudicator, data: data, value: 1)
        #expect(receipt.succeeded)
        // Our channel's events still arrive, after the hostile ones.
        try await c.fund()
        try await c.b.register(c.signed(c.state(4, Allocation(700_000, 800_000))))
        // Bounded: a poller stuck on the hostile log delivers nothing, and the test must fail
        // rather than wait for ever.
        let collected = Task {
            var kinds: [ChainEvent.Kind] = []
            for try await event in stream {
                if event.channel == c.params.id { kinds.append(event.kind) }
                if kinds.count == 4 { break }
            }
            return kinds
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(30))
            collected.cancel()
        }
        let kinds = (try? await collected.value) ?? []
        timeout.cancel()
        #expect(kinds.last == .registered(version: 4, deadline: ChainTime(seconds: 60), by: .second), "events: \(kinds)")
        #expect(try await c.a.channel(c.params.id)?.registeredVersion == 4)
    }

    static func revertReason(_ fixture: EVMFixture, _ data: [UInt8], from: EthereumAddress, value: Amount = .zero) async -> String? {
        do {
            _ = try await fixture.chain.call(fixture.deployment.adjudicator, data, from: from, value: value)
            return nil
        } catch {
            return TransactionSender.revertString(error)
        }
    }

    /// A reorganisation below the confirmation depth: the poller notices the hash of the
    /// block it processed changed, steps back and delivers the new branch.
    @Test func aReorganisationIsDetectedByBlockHashAndTheNewBranchDelivered() async throws {
        let c = try await Self.channel()
        try await c.fund()
        let stream = c.a.events(after: 0)
        var iterator = stream.makeAsyncIterator()
        var seen: [ChainEvent.Kind] = []
        while seen.count < 3, let event = try await iterator.next() { seen.append(event.kind) }
        #expect(seen.last == .funded)
        let snapshot = try await c.fixture.evm.snapshot()
        try await c.a.register(c.signed(c.state(1, Allocation(1_000_000, 500_000))))
        let first = try await iterator.next()
        #expect(first?.kind == .registered(version: 1, deadline: ChainTime(seconds: 60), by: .first))
        // The registration's block is dropped; another takes its height.
        try await c.fixture.evm.revert(to: snapshot)
        try await c.b.register(c.signed(c.state(2, Allocation(900_000, 600_000))))
        let replayed = try await iterator.next()
        #expect(replayed?.kind == .registered(version: 2, deadline: ChainTime(seconds: 60), by: .second))
        #expect(c.fixture.chain.diagnosticsSnapshot.reorganisations >= 1)
        #expect(try await c.a.channel(c.params.id)?.registeredVersion == 2)
    }

    /// Every call has a deadline: a frozen endpoint fails calls by then, and everything
    /// works again once it answers; an event stream rides out the outage.
    @Test func aFrozenEndpointFailsCallsByTheirDeadlineAndStreamsResume() async throws {
        var options = EVMFixture.testOptions
        options.callTimeout = .seconds(1)
        let c = try await Self.channel()
        let chain = EthereumChain(endpoint: c.fixture.evm.endpoint, adjudicator: c.fixture.deployment.adjudicator, options: options)
        let adapter = chain.adapter(for: Self.alice.publicKey, key: Self.alice.settlementKey)
        let stream = adapter.events(after: 0)
        let pid = c.fixture.evm.processIdentifier
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        let started = ContinuousClock.now
        let error = await settlementError { () async throws(SettlementError) in _ = try await adapter.now() }
        kill(pid, SIGCONT)
        guard case let .transport(why)? = error else {
            Issue.record("expected .transport, got \(String(describing: error))")
            return
        }
        #expect(why.contains("within"), "\(why)")
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(try await adapter.now() == .zero)
        try await c.fund()
        var iterator = stream.makeAsyncIterator()
        var kinds: [ChainEvent.Kind] = []
        while kinds.count < 3, let event = try await iterator.next() { kinds.append(event.kind) }
        #expect(kinds.last == .funded)
    }

    @Test func anEndpointNobodyListensOnFailsAtOnceWithATransportError() async throws {
        // Bound, never listening, held: connecting is refused, and nobody else can take it.
        let refusing = try RefusingPort()
        let url = try #require(URL(string: "http://127.0.0.1:\(refusing.port)"))
        let placeholder = try EthereumAddress(bytes: [UInt8](repeating: 7, count: 20))
        let chain = EthereumChain(endpoint: url, adjudicator: placeholder)
        let adapter = chain.adapter(for: Self.alice.publicKey, key: Self.alice.settlementKey)
        let error = await settlementError { () async throws(SettlementError) in _ = try await adapter.domain() }
        guard case let .transport(why)? = error else {
            Issue.record("expected .transport, got \(String(describing: error))")
            return
        }
        #expect(why.contains("cannot reach the Ethereum endpoint"), "\(why)")
    }
}

/// Runs `body` and returns the `SettlementError` it throws, or nil.
func settlementError(_ body: () async throws(SettlementError) -> Void) async -> SettlementError? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}
