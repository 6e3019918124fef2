import ParleyCrypto
import ParleyTransport

/// Where a node's time comes from. Every timer of the node — proposal, turn and wait
/// deadlines, the watcher's polling, retries, open and funding timeouts — reads and
/// sleeps on this clock.
///
/// Production uses ``SystemClock`` (the continuous clock). The simulator (`ParleySim`)
/// passes a virtual clock it advances itself, so one seed replays one run exactly.
public protocol NodeClock: Sendable {
    /// Monotonic time since the clock's own origin.
    var now: Duration { get }
    /// Returns once `now` has advanced by `duration`; throws `CancellationError` when the
    /// calling task is cancelled first.
    func sleep(for duration: Duration) async throws
}

/// The continuous clock (monotonic, keeps counting while the machine sleeps).
public struct SystemClock: NodeClock {
    private let origin = ContinuousClock.now

    public init() {}

    public var now: Duration { ContinuousClock.now - origin }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// Where a node's randomness comes from: channel nonces and retry jitter. Signatures need
/// none (Ed25519 is deterministic). Production uses ``SystemRandom``; the simulator a
/// seeded generator, so one seed fixes a run.
public protocol NodeRandom: Sendable {
    /// `count` random bytes.
    func bytes(_ count: Int) -> [UInt8]
    /// A uniform integer in `range`.
    func integer(in range: ClosedRange<Int>) -> Int
}

/// The operating system's secure generator.
public struct SystemRandom: NodeRandom {
    public init() {}

    public func bytes(_ count: Int) -> [UInt8] { SecureRandom.bytes(count) }

    public func integer(in range: ClosedRange<Int>) -> Int { Int.random(in: range) }
}

/// What a node runs on besides its key, journal and chain: how it reaches peers, its
/// clock and its randomness. The default is production (libuv TCP, the continuous clock,
/// the OS generator); the simulator passes its own (Docs/Architecture.md, "Seams").
public struct NodeEnvironment: Sendable {
    /// How the node reaches its peers; nil: encrypted libuv TCP sessions on a loop of the
    /// node's own (or the `loop` given to `Node.init`).
    public var network: (any LinkNetwork)?
    public var clock: any NodeClock
    public var random: any NodeRandom

    public init(network: (any LinkNetwork)? = nil, clock: any NodeClock = SystemClock(), random: any NodeRandom = SystemRandom()) {
        self.network = network
        self.clock = clock
        self.random = random
    }

    public static var production: NodeEnvironment { NodeEnvironment() }
}
