import ParleyCrypto
import ParleyWire
import PropertyBased
import Testing

@testable import ParleyChannel

/// Canonical encoding: one encoding per value, and decoding is total.
/// Each property runs from a seed drawn by PropertyBased; a failure prints a
/// `.fixedSeed(...)` trait that replays it exactly.
@Suite struct CodecPropertyTests {
    @Test func everyMessageRoundTripsToTheSameBytes() async throws {
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let message = RandomValues.message(&rng)
            let bytes = message.wireBytes
            let decoded = try ChannelMessage(wireBytes: bytes)
            #expect(decoded == message, "seed \(seed)")
            #expect(decoded.wireBytes == bytes, "seed \(seed)")
        }
    }

    @Test func randomBytesNeverCrashAndWhatDecodesReencodesExactly() async throws {
        await propertyCheck(count: 1500, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            // Start most inputs with a valid header so decoding gets past the first two bytes.
            var bytes = rng.bytes(Int(rng.next() % 400))
            if rng.chance(80), bytes.count >= 2 {
                bytes[0] = WireLimits.formatVersion
                bytes[1] = UInt8(1 + rng.next() % 7)
            }
            guard let decoded = try? ChannelMessage(wireBytes: bytes) else { return }
            #expect(decoded.wireBytes == bytes, "seed \(seed)")
        }
    }

    @Test func mutatedEncodingsOfTheSameValueDoNotExist() async throws {
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let message = RandomValues.message(&rng)
            let original = message.wireBytes
            let mutated = Mutation.random(&rng).apply(to: original, &rng)
            guard mutated != original, let decoded = try? ChannelMessage(wireBytes: mutated) else { return }
            #expect(decoded != message, "two encodings of one message, seed \(seed)")
        }
    }

    /// SignedState keeps one field per seat instead of an array; its bytes must stay the
    /// documented layout: state, presence byte (bit i = seat i), then signatures in seat order,
    /// each its backend tag (1 Ed25519, 2 Ethereum) and its bytes.
    @Test func signedStateEncodesStatePresenceThenSignaturesInSeatOrder() async throws {
        await propertyCheck(count: 500, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let signed = RandomValues.signedState(&rng)
            var expected = signed.state.wireBytes
            var presence: UInt8 = 0
            for (index, signature) in signed.signatures.enumerated() where signature != nil {
                presence |= 1 << UInt8(index)
            }
            expected.append(presence)
            for signature in signed.signatures.compactMap({ $0 }) {
                expected += [signature.backend.rawValue] + signature.bytes
            }
            #expect(signed.wireBytes == expected, "seed \(seed)")
            let decoded = try SignedState(wireBytes: expected)
            #expect(decoded == signed, "seed \(seed)")
            #expect(decoded.signatures == signed.signatures, "seed \(seed)")
            #expect(decoded.isFullySigned == !signed.signatures.contains(nil), "seed \(seed)")
        }
    }

    /// Allocation keeps one field per seat; `balances`, the seat subscript and the
    /// encoding (two big-endian u128 in seat order) must all still agree.
    @Test func allocationBalancesSeatsAndBytesAgree() async throws {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let (first, second) = (Amount(UInt128(rng.next()) << 64 | UInt128(rng.next())), Amount(rng.next()))
            var allocation = Allocation(first, second)
            #expect(allocation.balances == [first, second], "seed \(seed)")
            #expect(allocation.wireBytes == withUnsafeBytes(of: first.value.bigEndian, Array.init) + withUnsafeBytes(of: second.value.bigEndian, Array.init), "seed \(seed)")
            allocation[.first] = second
            allocation[.second] = first
            #expect(allocation.balances == [second, first], "seed \(seed)")
            allocation[.first] = first
            allocation[.second] = second
            #expect(allocation == Allocation(first, second), "seed \(seed)")
            #expect(allocation[.first] == first && allocation[.second] == second, "seed \(seed)")
            let decoded = try Allocation(wireBytes: allocation.wireBytes)
            #expect(decoded == allocation, "seed \(seed)")
        }
    }

    @Test func mutatedSignedStateIsNeverAccepted() async throws {
        let params = Fixtures.params()
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let original = Fixtures.signed(
                version: rng.next() % 100, (Amount(rng.next() % 500), Amount(rng.next() % 500)),
                isFinal: rng.chance(10))
            let mutation = Mutation.random(&rng)
            let mutated = mutation.apply(to: original.wireBytes, &rng)
            guard mutated != original.wireBytes, let decoded = try? SignedState(wireBytes: mutated) else { return }
            #expect(throws: UpdateRejection.self, "\(mutation) accepted, seed \(seed)") {
                try decoded.verify(against: params)
            }
        }
    }

    /// A peer still on message format 1 (64-bit amounts) is refused on its first message,
    /// never misread; so is any other format.
    @Test func aMessageOfAnotherFormatVersionIsRefused() throws {
        let message = ChannelMessage.propose(
            state: Fixtures.signed(version: 1, (90, 110)).state, signature: Fixtures.sign(Fixtures.signed(version: 1, (90, 110)).state, Fixtures.alice))
        var bytes = message.wireBytes
        #expect(bytes[0] == WireLimits.formatVersion)
        for version: UInt8 in [1, 3, 0xff] {
            bytes[0] = version
            #expect(throws: WireError.unsupportedVersion(got: version, supported: WireLimits.formatVersion)) {
                try ChannelMessage(wireBytes: bytes)
            }
        }
    }

    @Test func knownStateEncodesToTheDocumentedBytes() throws {
        // The worked example in Docs/Protocol.md: keep the two in step.
        let state = ChannelState(
            channelID: Fixtures.params().id, version: 3, allocation: Allocation(90, 110), appData: [0xAB],
            isFinal: false)
        let hex = hexString(state.wireBytes)
        #expect(hex == ProtocolDocExample.stateHex)
        #expect(Fixtures.params().signingDigest(of: state).hex == ProtocolDocExample.signingDigestHex)
        #expect(Fixtures.params().id.description == ProtocolDocExample.channelIDHex)
    }
}

/// The byte-level edits used to attack the codec.
enum Mutation {
    case flipBit, replaceByte, insertByte, deleteByte, truncate, appendBytes

    static func random(_ rng: inout SeededRandom) -> Mutation {
        [.flipBit, .replaceByte, .insertByte, .deleteByte, .truncate, .appendBytes][Int(rng.next() % 6)]
    }

    func apply(to bytes: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var out = bytes
        guard !out.isEmpty else { return [UInt8(truncatingIfNeeded: rng.next())] }
        let index = Int(rng.next() % UInt64(out.count))
        switch self {
        case .flipBit: out[index] ^= 1 << UInt8(rng.next() % 8)
        case .replaceByte: out[index] = UInt8(truncatingIfNeeded: rng.next())
        case .insertByte: out.insert(UInt8(truncatingIfNeeded: rng.next()), at: index)
        case .deleteByte: out.remove(at: index)
        case .truncate: out.removeLast(out.count - index)
        case .appendBytes: out += rng.bytes(1 + Int(rng.next() % 8))
        }
        return out
    }
}
