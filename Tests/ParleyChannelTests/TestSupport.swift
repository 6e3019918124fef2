import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

/// Test helpers on the package's replayable generator.
extension SeededRandom {
    mutating func chance(_ percent: UInt64) -> Bool {
        next() % 100 < percent
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

enum Fixtures {
    /// Deterministic keys: seed bytes all equal to `n`.
    static func key(_ n: UInt8) -> SigningKey {
        // A 32-byte seed is always accepted.
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    static let alice = key(1)
    static let bob = key(2)
    static let mallory = key(3)

    /// The Ethereum settlement key of each fixture identity: secrets 1, 2 and 3.
    static func ethereumKey(of identity: SigningKey) -> EthereumSigningKey {
        let n: UInt8 = identity.publicKey == alice.publicKey ? 1 : identity.publicKey == bob.publicKey ? 2 : 3
        // Secrets 1...3 are below the curve order.
        return try! EthereumSigningKey(secretBytes: [UInt8](repeating: 0, count: 31) + [n])
    }

    /// What signs states for `identity` on `backend`: the identity itself, or its Ethereum key.
    static func signer(_ identity: SigningKey, _ backend: ChannelBackendID = Fixtures.backend) -> any StateSigner {
        backend == .ed25519 ? identity : ethereumKey(of: identity)
    }

    /// The backend the running test's channels use: `.ed25519` unless the suite runs
    /// `.onBothBackends`, which runs each test once per backend.
    @TaskLocal static var backend: ChannelBackendID = .ed25519

    /// `identity`'s signature of `state` on the current backend, in a channel of the fixture
    /// domain for that backend (the states tests sign by hand are of `params()` channels).
    static func sign(_ state: ChannelState, _ identity: SigningKey) -> StateSignature {
        let domain = backend == .ed25519 ? SettlementDomain.embedded : ethereumDomain
        return signer(identity).signState(backend.backend.signingDigest(of: state, domain: domain))
    }

    /// A local EVM's chain id and its first contract address (Tests/Vectors/ethereum-backend.json).
    static let ethereumDomain = try! SettlementDomain(
        chainID: 1337, contract: Hex.decode("5fbdb2315678afecb367f032d93f642f64180aa3")!)

    static func params(
        _ first: SigningKey = alice, _ second: SigningKey = bob, nonce: UInt8 = 7,
        challenge: UInt64 = 60, app: AppID = .payment, backend: ChannelBackendID = Fixtures.backend
    ) -> ChannelParams {
        // Fixed, valid inputs.
        try! ChannelParams(
            participants: [first.publicKey, second.publicKey],
            signers: backend == .ed25519 ? nil : [first, second].map { signer($0, backend).settlementAddress },
            nonce: [UInt8](repeating: nonce, count: ChannelParams.nonceBytes),
            challengeDuration: challenge, appID: app, domain: backend == .ed25519 ? .embedded : ethereumDomain)
    }

    /// A state of the default channel signed by whichever of alice/bob are named.
    static func signed(
        version: UInt64, _ balances: (Amount, Amount), appData: [UInt8] = [], isFinal: Bool = false,
        by signers: [ParticipantIndex] = [.first, .second], params: ChannelParams = params()
    ) -> SignedState {
        let state = ChannelState(
            channelID: params.id, version: version, allocation: Allocation(balances.0, balances.1),
            appData: appData, isFinal: isFinal)
        var signed = SignedState(state: state)
        for seat in signers { signed[seat] = params.sign(state, with: signer(seat == .first ? alice : bob, params.backendID)) }
        return signed
    }
}

/// Random but well-formed protocol values, for codec properties.
enum RandomValues {
    static let keys = [Fixtures.alice, Fixtures.bob, Fixtures.mallory]

    static func params(_ rng: inout SeededRandom) -> ChannelParams {
        let first = keys[Int(rng.next() % 3)]
        let second = keys.filter { $0.publicKey != first.publicKey }[Int(rng.next() % 2)]
        let app = rng.chance(50) ? AppID.payment : try! AppID("game.ttt/\(rng.next() % 1000)")
        // Either backend: Ethereum channels carry their signers and a contract in the domain.
        let ethereum = rng.chance(50)
        return try! ChannelParams(
            participants: [first.publicKey, second.publicKey],
            signers: ethereum ? [first, second].map { Fixtures.signer($0, .ethereum).settlementAddress } : nil,
            nonce: rng.bytes(ChannelParams.nonceBytes),
            challengeDuration: 1 + rng.next() % ChannelParams.challengeDurationRange.upperBound, appID: app,
            domain: ethereum ? Fixtures.ethereumDomain : .embedded)
    }

    static func state(_ rng: inout SeededRandom, channel: ChannelID? = nil) -> ChannelState {
        let id = channel ?? ChannelID(digest: try! Digest(bytes: rng.bytes(32)))
        return ChannelState(
            channelID: id, version: rng.chance(20) ? UInt64.max : rng.next() % 1000,
            allocation: Allocation(Amount(rng.next()), Amount(rng.next() % 1_000_000)),
            appData: rng.chance(50) ? [] : rng.bytes(Int(rng.next() % 200)), isFinal: rng.chance(20))
    }

    /// Either backend's form: 64 random bytes, or a well-formed `r ‖ s ‖ v` (s below n/2).
    static func signature(_ rng: inout SeededRandom) -> StateSignature {
        if rng.chance(50) { return .ed25519(try! Signature(bytes: rng.bytes(64))) }
        var bytes = rng.bytes(64)
        bytes[32] &= 0x3f
        return .ethereum(try! RecoverableSignature(bytes: bytes + [rng.chance(50) ? 27 : 28]))
    }

    static func signedState(_ rng: inout SeededRandom) -> SignedState {
        var signed = SignedState(state: state(&rng))
        for participant in ParticipantIndex.allCases where rng.chance(70) {
            signed[participant] = signature(&rng)
        }
        return signed
    }

    static func reason(_ rng: inout SeededRandom) -> RejectReason {
        let text = String(decoding: rng.bytes(Int(rng.next() % 40)).map { 0x20 + $0 % 0x5F }, as: UTF8.self)
        switch rng.next() % 5 {
        case 0: return .concurrentProposal
        case 1: return .declined(text)
        case 2: return .invalid(text + "é✓")
        case 3: return .channelFinal
        default: return .notReady
        }
    }

    static func message(_ rng: inout SeededRandom) -> ChannelMessage {
        let id = ChannelID(digest: try! Digest(bytes: rng.bytes(32)))
        switch ChannelMessage.Kind.allCases[Int(rng.next() % 7)] {
        case .openProposal:
            return .openProposal(OpenProposal(
                params: params(&rng), initial: state(&rng), signature: signature(&rng)))
        case .openAccept: return .openAccept(channelID: id, signature: signature(&rng))
        case .propose: return .propose(state: state(&rng), signature: signature(&rng))
        case .accept: return .accept(channelID: id, version: rng.next(), signature: signature(&rng))
        case .reject: return .reject(channelID: id, version: rng.next(), reason: reason(&rng))
        case .reestablish:
            return .reestablish(channelID: id, committedVersion: rng.next(), highestSignedVersion: rng.next())
        case .commitProof: return .commitProof(signedState(&rng))
        }
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] })
}

/// Filled from the worked example in Docs/Protocol.md.
enum ProtocolDocExample {
    static let channelIDHex = "5ca5e9c59921df3143b10fdcb273faa16e4c61b9982de0e88150676acd049963"
    static let stateHex =
        "5ca5e9c59921df3143b10fdcb273faa16e4c61b9982de0e88150676acd049963" + "0000000000000003"
        + "0000000000000000000000000000005a" + "0000000000000000000000000000006e" + "00000001" + "ab" + "00"
    static let signingDigestHex = "5872a279e325d5a6ef21283c668c57d13608284fb5b4cf37c2968c8c2175cf41"
}

/// Runs each test of a suite once per settlement backend, with `Fixtures.backend` set:
/// every fixture channel, signature and `Duo` of the test then uses that backend.
struct OnBothBackends: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil || !test.isSuite else { return try await function() }
        for backend in ChannelBackendID.allCases {
            try await Fixtures.$backend.withValue(backend) { try await function() }
        }
    }
}

extension Trait where Self == OnBothBackends {
    static var onBothBackends: Self { OnBothBackends() }
}
