import ParleyCrypto
import ParleyWire

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

    static func params(
        _ first: SigningKey = alice, _ second: SigningKey = bob, nonce: UInt8 = 7,
        challenge: UInt64 = 60, app: AppID = .payment
    ) -> ChannelParams {
        // Fixed, valid inputs.
        try! ChannelParams(
            participants: [first.publicKey, second.publicKey],
            nonce: [UInt8](repeating: nonce, count: ChannelParams.nonceBytes),
            challengeDuration: challenge, appID: app)
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
        for signer in signers { signed[signer] = state.signed(by: signer == .first ? alice : bob) }
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
        return try! ChannelParams(
            participants: [first.publicKey, second.publicKey], nonce: rng.bytes(ChannelParams.nonceBytes),
            challengeDuration: 1 + rng.next() % ChannelParams.challengeDurationRange.upperBound, appID: app)
    }

    static func state(_ rng: inout SeededRandom, channel: ChannelID? = nil) -> ChannelState {
        let id = channel ?? ChannelID(digest: try! Digest(bytes: rng.bytes(32)))
        return ChannelState(
            channelID: id, version: rng.chance(20) ? UInt64.max : rng.next() % 1000,
            allocation: Allocation(Amount(rng.next()), Amount(rng.next() % 1_000_000)),
            appData: rng.chance(50) ? [] : rng.bytes(Int(rng.next() % 200)), isFinal: rng.chance(20))
    }

    static func signature(_ rng: inout SeededRandom) -> Signature {
        try! Signature(bytes: rng.bytes(64))
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
    static let channelIDHex = "b8d211cee680ff44b3eabf888a7f87ae51049675b8b6c43a748cc510ffdfef1c"
    static let stateHex =
        "b8d211cee680ff44b3eabf888a7f87ae51049675b8b6c43a748cc510ffdfef1c" + "0000000000000003"
        + "0000000000000000000000000000005a" + "0000000000000000000000000000006e" + "00000001" + "ab" + "00"
    static let signingDigestHex = "03e25e7db05f198cbdcc9f4ef9081e203f85b6f65456f55b9b8b3c8d90bdde55"
}
