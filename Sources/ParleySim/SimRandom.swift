import ParleyCrypto
import ParleyLocks
import ParleyNode

/// Seeded randomness for the simulator: a ``NodeRandom`` whose every draw follows from one
/// seed (SplitMix64, ParleyCrypto's `SeededRandom`). Never for real keys or nonces.
///
/// Each component draws from a stream of its own, made with ``fork(label:)``: a child stream
/// depends only on its parent's seed and the label, never on how much anyone has drawn, so
/// adding a draw in one component (a new fault, an extra jitter) does not shift what any
/// other component sees. Labels must be unique among a parent's children: the same label
/// gives the same stream.
///
/// Safe to share between tasks (state behind a lock); under ``SimScheduler`` the order of
/// draws, and so their values, is fixed by the seed.
public final class SimRandom: NodeRandom {
    /// The seed this stream started from.
    public let seed: UInt64
    private let generator: Locked<SeededRandom>

    public init(seed: UInt64) {
        self.seed = seed
        generator = Locked(SeededRandom(seed: seed))
    }

    /// An independent stream named `label`, derived from this stream's seed alone.
    ///
    /// All SplitMix64 streams are windows on one 2^64-long cycle; a hashed seed puts the child
    /// at an effectively random point on it, so two streams overlap only after ~2^63 draws.
    public func fork(label: String) -> SimRandom {
        SimRandom(seed: Self.mix(seed ^ Self.mix(Self.fnv1a(label))))
    }

    /// The next 64 random bits.
    public func next() -> UInt64 {
        generator.withLock { $0.next() }
    }

    public func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "negative byte count \(count)")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            var word = next()
            for _ in 0..<min(8, count - bytes.count) {
                bytes.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return bytes
    }

    /// A uniform integer in `range`, by Lemire's multiply-and-reject. Implemented here rather
    /// than through `Int.random(in:using:)` so a toolchain update cannot change the values a
    /// seed produces.
    public func integer(in range: ClosedRange<Int>) -> Int {
        let spanMinusOne = UInt64(bitPattern: Int64(range.upperBound)) &- UInt64(bitPattern: Int64(range.lowerBound))
        if spanMinusOne == .max { return Int(truncatingIfNeeded: Int64(bitPattern: next())) }
        let span = spanMinusOne + 1
        var product = next().multipliedFullWidth(by: span)
        if product.low < span {
            let threshold = (0 &- span) % span
            while product.low < threshold {
                product = next().multipliedFullWidth(by: span)
            }
        }
        return range.lowerBound &+ Int(truncatingIfNeeded: product.high)
    }

    /// True with probability `probability` (clamped to 0...1).
    public func chance(_ probability: Double) -> Bool {
        // 53 random bits: every double in [0, 1) with that spacing, equally likely.
        Double(next() >> 11) * 0x1p-53 < probability
    }

    /// SplitMix64's finaliser: a bijection on 64 bits that spreads every input bit.
    private static func mix(_ value: UInt64) -> UInt64 {
        var mixed = value
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// FNV-1a over the label's UTF-8: stable across processes, unlike `Hasher`.
    private static func fnv1a(_ label: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in label.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
