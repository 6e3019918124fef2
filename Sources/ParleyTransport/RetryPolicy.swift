import ParleyCrypto
import ParleyLocks
/// How `EventLoop.dial(to:timeout:retry:watermarks:)` spaces its attempts:
/// exponential backoff with full jitter.
///
/// After failed attempt `n` (1-based) the wait is drawn from
/// `0...min(maxDelay, initialDelay · multiplierⁿ⁻¹)` ("full jitter": peers
/// that lost a connection together do not retry in lockstep).
public struct RetryPolicy: Sendable {
    public static let defaultInitialDelay: Duration = .milliseconds(100)
    public static let defaultMultiplier = 2.0
    public static let defaultMaxDelay: Duration = .seconds(10)
    public static let defaultMaxAttempts = 8

    /// Ceiling of the wait after the first failure.
    public var initialDelay: Duration
    /// Growth of the ceiling per failure (at least 1).
    public var multiplier: Double
    /// Largest ceiling.
    public var maxDelay: Duration
    /// Attempts in total, the first included (at least 1).
    public var maxAttempts: Int
    /// Turns a ceiling into the actual wait.
    public var jitter: Jitter

    public init(
        initialDelay: Duration = defaultInitialDelay,
        multiplier: Double = defaultMultiplier,
        maxDelay: Duration = defaultMaxDelay,
        maxAttempts: Int = defaultMaxAttempts,
        jitter: Jitter = .full
    ) {
        self.initialDelay = initialDelay
        self.multiplier = multiplier
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
        self.jitter = jitter
    }

    /// 100 ms doubling up to 10 s, 8 attempts, full jitter from the system generator.
    public static let `default` = RetryPolicy()

    /// The upper bound of the wait after failed attempt `attempt` (1-based), before jitter.
    public func backoffCeiling(afterAttempt attempt: Int) -> Duration {
        let cap = max(maxDelay, .zero)
        let initial = min(max(initialDelay, .zero), cap)
        // Grow in floating point and stop at the cap, so no setting can overflow a Duration.
        let capSeconds = cap.secondsValue
        var ceilingSeconds = initial.secondsValue
        let growth = multiplier.isFinite ? max(multiplier, 1) : 1
        var step = 1
        while step < attempt && ceilingSeconds < capSeconds {
            ceilingSeconds *= growth
            step += 1
        }
        if step == 1 { return initial }
        return ceilingSeconds >= capSeconds ? cap : .seconds(ceilingSeconds)
    }

    /// The wait after failed attempt `attempt` (1-based): the ceiling with jitter applied.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let ceiling = backoffCeiling(afterAttempt: attempt)
        return min(max(jitter.apply(ceiling), .zero), ceiling)
    }

    /// Maps a backoff ceiling to the wait actually used (clamped to `0...ceiling`).
    public struct Jitter: Sendable {
        let apply: @Sendable (Duration) -> Duration

        /// Any mapping, e.g. `Jitter { $0 / 2 }` for a fixed fraction in tests.
        public init(_ apply: @escaping @Sendable (_ ceiling: Duration) -> Duration) {
            self.apply = apply
        }

        /// Uniform in `0...ceiling` from the system's random generator.
        public static let full = Jitter { ceiling in
            var generator = SystemRandomNumberGenerator()
            return uniformDuration(upTo: ceiling, using: &generator)
        }

        /// Uniform in `0...ceiling` from `generator`, so a seeded generator
        /// gives the same waits on every run.
        public static func full<Generator: RandomNumberGenerator & Sendable>(using generator: Generator) -> Jitter {
            let source = LockedGenerator(generator)
            return Jitter { ceiling in source.next(upTo: ceiling) }
        }

        /// Uniform in `0...ceiling` from a SeededRandom stream seeded with `seed`.
        public static func seeded(_ seed: UInt64) -> Jitter {
            full(using: SeededRandom(seed: seed))
        }

        /// No jitter: always wait the full ceiling.
        public static let none = Jitter { $0 }
    }
}

/// A uniformly random duration in `0...ceiling`, at nanosecond resolution.
private func uniformDuration<Generator: RandomNumberGenerator>(
    upTo ceiling: Duration, using generator: inout Generator
) -> Duration {
    let (seconds, attoseconds) = ceiling.components
    guard seconds >= 0, ceiling > .zero else { return .zero }
    let maxNanoseconds = UInt64(min(seconds, Int64(UInt64.max / 2_000_000_000))) * 1_000_000_000
        + UInt64(max(attoseconds, 0) / 1_000_000_000)
    return .nanoseconds(Int64(clamping: UInt64.random(in: 0...maxNanoseconds, using: &generator)))
}

extension Duration {
    fileprivate var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A caller's generator moved behind a lock so a `Sendable` jitter can draw from it.
private final class LockedGenerator<Generator: RandomNumberGenerator & Sendable>: @unchecked Sendable {
    private let lock = PThreadLock()
    private var generator: Generator

    init(_ generator: Generator) {
        self.generator = generator
    }

    func next(upTo ceiling: Duration) -> Duration {
        lock.withLock { uniformDuration(upTo: ceiling, using: &generator) }
    }
}
