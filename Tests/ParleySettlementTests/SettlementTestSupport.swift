import ParleyChannel
import ParleyGames
import ParleyCrypto
import ParleyEthereum
import ParleySettlement
import ParleyTestSupport
import ParleyWire
import Testing

/// Deterministic keys and channels.
enum Keys {
    /// Seed bytes all equal to `n`; a 32-byte seed is always accepted.
    static func key(_ n: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    static let alice = key(1)
    static let bob = key(2)
    static let mallory = key(3)
}

/// One chain as the conformance tests see it: adapters per key and a way to move time.
///
/// Every scenario in this target runs against each `Backend`, so the same
/// rules hold on every chain Parley supports.
struct ChainUnderTest: Sendable {
    let makeAdapter: @Sendable (SigningKey) -> any SettlementAdapter & DevFaucet
    let advance: @Sendable (UInt64) async throws -> Void
    /// The chain's settlement domain: the scenarios bind their channels to it.
    let domain: SettlementDomain
    /// The backend the scenarios' channels sign states with.
    var channelBackend: ChannelBackendID = .ed25519
    /// Whatever must live as long as the chain (the devchain daemon and its clients).
    var resources: (any Sendable)? = nil
    /// Event sequences count 1, 2, 3… (Parley's chains). On an EVM they are
    /// `block << 20 | logIndex`: increasing, not gap-free.
    var gapFreeSequences = true

    func adapter(_ key: SigningKey) -> any SettlementAdapter & DevFaucet { makeAdapter(key) }

    /// Moves the chain clock to exactly `time`.
    func advance(to time: ChainTime) async throws {
        let now = try await adapter(Keys.mallory).now()
        if time > now { try await advance(time.seconds - now.seconds) }
    }
}

/// The chains the conformance suite runs against.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case local
    /// `LocalChain` settling Ethereum-backend channels: secp256k1 signers and EIP-712
    /// digests, on a domain with an adjudicator address.
    case localEthereum = "local-ethereum"
    /// A real `parley devchain --manual-time` subprocess (one per test), reached through
    /// `DevchainClient`s; `advance` asks the daemon to move its clock.
    case devchain
    /// `Contracts/Adjudicator.vy` on the local EVM (py-evm behind JSON-RPC, one per test,
    /// manual clock from 0), holding the development token, through `EthereumAdapter`s.
    case evm

    /// Every backend; `evm` only where the local EVM's Python environment exists
    /// (`make test` creates it; `swift test` alone on a machine without it skips those cases).
    static var allCases: [Backend] {
        EVMFixture.isAvailable ? [.local, .localEthereum, .devchain, .evm] : [.local, .localEthereum, .devchain]
    }

    var testDescription: String { rawValue }

    func makeChain() async throws -> ChainUnderTest {
        switch self {
        case .local:
            let chain = LocalChain(apps: [CounterApp()])
            return ChainUnderTest(
                makeAdapter: { chain.adapter(for: $0.publicKey) },
                advance: { chain.advance(by: $0) }, domain: chain.domain)
        case .localEthereum:
            let domain = try SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20))
            let chain = LocalChain(apps: [CounterApp()], domain: domain)
            return ChainUnderTest(
                makeAdapter: { chain.adapter(for: $0.publicKey) },
                advance: { chain.advance(by: $0) }, domain: chain.domain, channelBackend: .ethereum)
        case .devchain:
            // Waiting for the daemon's listening line blocks: off the cooperative pool.
            let fixture = try await offPool { try DevchainFixture.start() }
            return ChainUnderTest(
                makeAdapter: { fixture.client(for: $0) },
                advance: { try await fixture.client(for: Keys.mallory).advance(by: $0) },
                domain: .devchainDefault, resources: fixture)
        case .evm:
            let fixture = try await EVMFixture.start(keys: [Keys.alice, Keys.bob, Keys.mallory])
            return ChainUnderTest(
                makeAdapter: { fixture.adapter(for: $0) },
                advance: { try await fixture.evm.increaseTime($0) },
                domain: try await fixture.chain.domain(), channelBackend: .ethereum, resources: fixture,
                gapFreeSequences: false)
        }
    }
}

/// A channel between alice (seat 0) and bob (seat 1) and helpers to drive it.
struct Scenario {
    let chain: ChainUnderTest
    let params: ChannelParams
    let opening: Allocation
    let alice: any SettlementAdapter & DevFaucet
    let bob: any SettlementAdapter & DevFaucet
    let mallory: any SettlementAdapter & DevFaucet

    static let challenge: UInt64 = 60

    init(
        _ chain: ChainUnderTest, opening: Allocation = Allocation(100, 50), app: AppID = .payment,
        nonce: UInt8 = 7, challenge: UInt64 = Scenario.challenge
    ) throws {
        self.chain = chain
        params = try ChannelParams(
            participants: [Keys.alice.publicKey, Keys.bob.publicKey],
            signers: chain.channelBackend == .ed25519 ? nil : [Keys.alice, Keys.bob].map { $0.settlementKey.settlementAddress },
            nonce: [UInt8](repeating: nonce, count: ChannelParams.nonceBytes),
            challengeDuration: challenge, appID: app, domain: chain.domain)
        self.opening = opening
        alice = chain.adapter(Keys.alice)
        bob = chain.adapter(Keys.bob)
        mallory = chain.adapter(Keys.mallory)
    }

    /// Mints each seat its opening amount (plus `extra`) and deposits the opening amounts.
    static func funded(
        _ chain: ChainUnderTest, opening: Allocation = Allocation(100, 50), app: AppID = .payment,
        nonce: UInt8 = 7
    ) async throws -> Scenario {
        let scenario = try Scenario(chain, opening: opening, app: app, nonce: nonce)
        try await scenario.mintOpening()
        try await scenario.deposit(.first, opening[.first])
        try await scenario.deposit(.second, opening[.second])
        return scenario
    }

    func mintOpening(extra: Amount = 0) async throws {
        if opening[.first] + extra > 0 { try await alice.mint(opening[.first] + extra, to: Keys.alice.publicKey) }
        if opening[.second] + extra > 0 { try await bob.mint(opening[.second] + extra, to: Keys.bob.publicKey) }
    }

    func adapter(_ seat: ParticipantIndex) -> any SettlementAdapter & DevFaucet {
        seat == .first ? alice : bob
    }

    @discardableResult
    func deposit(_ seat: ParticipantIndex, _ amount: Amount) async throws -> [ChainEvent] {
        try await adapter(seat).deposit(params: params, opening: opening, participant: seat, amount: amount)
    }

    func state(
        _ version: UInt64, _ balances: (Amount, Amount)? = nil, appData: [UInt8] = [], isFinal: Bool = false
    ) -> ChannelState {
        let allocation = balances.map { Allocation($0.0, $0.1) } ?? opening
        return ChannelState(
            channelID: params.id, version: version, allocation: allocation, appData: appData, isFinal: isFinal)
    }

    /// `state` signed by the named seats.
    /// `key`'s signature of `state` under the channel's backend: the identity itself on
    /// Ed25519, its settlement key on Ethereum.
    func sign(_ state: ChannelState, _ key: SigningKey) -> StateSignature {
        params.sign(state, with: key.stateSigner(for: chain.channelBackend))
    }

    func signed(_ state: ChannelState, by seats: [ParticipantIndex] = [.first, .second]) -> SignedState {
        var signed = SignedState(state: state)
        for seat in seats { signed[seat] = sign(state, seat == .first ? Keys.alice : Keys.bob) }
        return signed
    }

    /// The events' positions in the chain's whole event history (1-based): their sequences
    /// on chains that number events 1, 2, 3…, else found by reading the history.
    func ordinals(_ events: [ChainEvent]) async throws -> [UInt64] {
        if chain.gapFreeSequences { return events.map(\.sequence) }
        guard let last = events.map(\.sequence).max() else { return [] }
        var history: [UInt64] = []
        for try await event in alice.events(after: 0) {
            history.append(event.sequence)
            if event.sequence >= last { break }
        }
        return events.map { event in UInt64((history.firstIndex(of: event.sequence) ?? -1) + 1) }
    }

    func onChain() async throws -> ChannelOnChain? {
        try await alice.channel(params.id)
    }

    func deadline() async throws -> ChainTime? {
        try await onChain()?.deadline
    }
}

/// Runs `body` and returns the `SettlementError` it throws; records an issue if it throws nothing.
func settlementError(
    _ body: () async throws(SettlementError) -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async -> SettlementError? {
    do {
        try await body()
        Issue.record("expected a SettlementError, none was thrown", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
