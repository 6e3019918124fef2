import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire
import PropertyBased
import Testing

/// Events and transactions travel to and from the devchain daemon and sit in its log:
/// one encoding per value, and decoding untrusted bytes never traps.
@Suite struct ChainCodecTests {
    @Test func everyEventRoundTripsToTheSameBytes() async throws {
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let event = RandomChain.event(&rng)
            let bytes = event.wireBytes
            let decoded = try ChainEvent(wireBytes: bytes)
            #expect(decoded == event, "seed \(seed)")
            #expect(decoded.wireBytes == bytes, "seed \(seed)")
        }
    }

    @Test func everyTransactionRoundTripsToTheSameBytes() async throws {
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let tx = RandomChain.anyTransaction(&rng)
            let bytes = tx.wireBytes
            let decoded = try ChainTransaction(wireBytes: bytes)
            #expect(decoded == tx, "seed \(seed)")
            #expect(decoded.wireBytes == bytes, "seed \(seed)")
        }
    }

    @Test func everySettlementErrorRoundTrips() async throws {
        await propertyCheck(count: 200, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            let errors = RandomChain.everyError(&rng)
            #expect(Set(errors.map { $0.wireBytes[0] }).count == errors.count, "one tag per case")
            for error in errors {
                let decoded = try SettlementError(wireBytes: error.wireBytes)
                #expect(decoded == error, "seed \(seed)")
            }
        }
    }

    @Test func longErrorTextsAreClippedToTheLimitSoTheyAlwaysDecode() throws {
        let long = SettlementError.invalidMove(String(repeating: "é", count: 300))
        let decoded = try SettlementError(wireBytes: long.wireBytes)
        guard case let .invalidMove(text) = decoded else {
            Issue.record("decoded \(decoded)")
            return
        }
        #expect(text.utf8.count <= WireLimits.maxReasonBytes && text.allSatisfy { $0 == "é" })
    }

    @Test func mutatedBytesNeverCrashAndWhatDecodesReencodesExactly() async throws {
        await propertyCheck(count: 1500, input: Gen.uint64()) { seed in
            var rng = SeededRandom(seed: seed)
            var bytes = switch rng.below(3) {
            case 0: RandomChain.event(&rng).wireBytes
            case 1: RandomChain.anyTransaction(&rng).wireBytes
            default: rng.pick(RandomChain.everyError(&rng)).wireBytes
            }
            for _ in 0..<(1 + rng.below(3)) where !bytes.isEmpty {
                let index = Int(rng.below(UInt64(bytes.count)))
                switch rng.below(3) {
                case 0: bytes[index] ^= 1 << UInt8(rng.below(8))
                case 1: bytes.removeLast(bytes.count - index)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: index)
                }
            }
            if let event = try? ChainEvent(wireBytes: bytes) { #expect(event.wireBytes == bytes, "seed \(seed)") }
            if let tx = try? ChainTransaction(wireBytes: bytes) { #expect(tx.wireBytes == bytes, "seed \(seed)") }
            if let error = try? SettlementError(wireBytes: bytes) { #expect(error.wireBytes == bytes, "seed \(seed)") }
        }
    }

    @Test func unknownTagsSeatsAndSequenceZeroAreRefused() throws {
        let id = RandomChain.channels[0].id
        let event = ChainEvent(sequence: 1, time: .zero, channel: id, kind: .withdrawn(participant: .second, amount: 5))
        var bytes = event.wireBytes
        let kindOffset = 8 + 8 + 32
        bytes[kindOffset] = 99
        #expect(throws: WireError.unknownTag(field: "event kind", tag: 99)) { try ChainEvent(wireBytes: bytes) }
        bytes = event.wireBytes
        bytes[kindOffset + 1] = 2
        #expect(throws: WireError.unknownTag(field: "participant", tag: 2)) { try ChainEvent(wireBytes: bytes) }
        bytes = event.wireBytes
        bytes[7] = 0
        #expect(throws: WireError.invalidValue(field: "event sequence", reason: "sequences start at 1")) {
            try ChainEvent(wireBytes: bytes)
        }
        #expect(throws: WireError.unknownTag(field: "transaction kind", tag: 0)) { try ChainTransaction(wireBytes: [0]) }
        #expect(throws: WireError.trailingBytes(count: 1)) {
            try ChainTransaction(wireBytes: ChainTransaction.conclude(channel: id).wireBytes + [0])
        }
    }

    @Test func knownEventEncodesToTheDocumentedBytes() throws {
        // The worked example in Docs/Settlement.md: keep the two in step.
        let id = ChannelID(digest: try Digest(bytes: [UInt8](repeating: 0xAB, count: 32)))
        let event = ChainEvent(
            sequence: 3, time: ChainTime(seconds: 10), channel: id,
            kind: .registered(version: 7, deadline: ChainTime(seconds: 70), by: .second))
        let hex = event.wireBytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(hex == "0000000000000003" + "000000000000000a" + String(repeating: "ab", count: 32)
            + "03" + "0000000000000007" + "0000000000000046" + "01")
    }
}
