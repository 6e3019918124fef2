import CLibUV

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The listener's bounds on handshake work (Docs/Transport.md, "Hostile peers"): before it
// knows who is calling, a listener does an X25519 key exchange and an Ed25519 signature for
// every hello, so how many hellos reach that point is limited per source address and in total.

/// A token-bucket rate: the bucket holds at most `burst` tokens and gains `perSecond` tokens
/// per second; every handshake it admits takes one. So `burst` handshakes may come at once,
/// then one every `1 / perSecond` seconds.
public struct HandshakeRate: Sendable, Equatable, CustomStringConvertible {
    /// Tokens added per second; at least ``minimumPerSecond``.
    public let perSecond: Double
    /// The most tokens the bucket holds, and what an unused bucket holds; at least 1.
    public let burst: Int

    /// The slowest refill accepted: with none at all, a source that used its burst would
    /// stay locked out for good.
    public static let minimumPerSecond = 1.0 / 60
    /// No limit: for benchmarks and tests that handshake many times from one address on
    /// purpose; never on a listener strangers can reach.
    public static let unlimited = HandshakeRate(perSecond: .infinity, burst: .max)

    /// `perSecond` below ``minimumPerSecond`` (or NaN) is raised to it; `burst` below 1 to 1.
    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond.isNaN ? Self.minimumPerSecond : max(Self.minimumPerSecond, perSecond)
        self.burst = max(1, burst)
    }

    /// True for ``unlimited`` (an infinite `perSecond`): the bucket never runs out.
    public var isUnlimited: Bool { perSecond == .infinity }

    public var description: String {
        isUnlimited ? "unlimited" : "\(perSecond) per second, burst \(burst)"
    }
}

/// The listener's two handshake token buckets (``SessionConfig/handshakeRate``).
///
/// A responder handshake is charged when its hello has passed the checks that cost nothing
/// (size, magic, layout, a common version), right before the listener's X25519 key exchange
/// and Ed25519 signature: one token from its source's bucket (``HandshakeSource``) and one
/// from the total bucket. If either is empty, the connection is closed at once with
/// ``SessionCloseReason/handshakeRateLimited(_:)`` and neither bucket is charged.
/// Connections that never send a valid hello cost no tokens.
public struct HandshakeRateLimits: Sendable, Equatable {
    /// One bucket per source address.
    public var perAddress: HandshakeRate
    /// One bucket for every source together.
    public var total: HandshakeRate

    /// 20 per second, burst 10: far more than an honest peer needs (a node keeps one session
    /// per peer and redials with backoff), little enough that one address cannot drain the
    /// total bucket by itself.
    public static let defaultPerAddress = HandshakeRate(perSecond: 20, burst: 10)
    /// 300 per second, burst 150: a small share of one core spent on key exchanges and
    /// signatures, however many addresses call.
    public static let defaultTotal = HandshakeRate(perSecond: 300, burst: 150)
    public static let `default` = HandshakeRateLimits(perAddress: defaultPerAddress, total: defaultTotal)
    /// No rate limit (the pending-handshake limits still apply): for benchmarks and tests
    /// that open many sessions from one address on purpose.
    public static let unlimited = HandshakeRateLimits(perAddress: .unlimited, total: .unlimited)

    public init(perAddress: HandshakeRate = defaultPerAddress, total: HandshakeRate = defaultTotal) {
        self.perAddress = perAddress
        self.total = total
    }
}

/// Which handshake token bucket was empty (``SessionCloseReason/handshakeRateLimited(_:)``).
public enum HandshakeRateScope: Sendable, Equatable {
    /// The bucket of the connection's source address.
    case address
    /// The bucket shared by every source.
    case total
}

/// What the listener's per-address bounds count against: an IPv4 address (also when it
/// arrives IPv4-mapped, `::ffff:a.b.c.d`, on a dual-stack listener), or the /64 network of an
/// IPv6 address, because one IPv6 subscriber is usually given a whole /64 and could otherwise
/// call from 2^64 addresses. The port never counts.
enum HandshakeSource: Hashable, Sendable, CustomStringConvertible {
    case ipv4(UInt32)
    /// The first 64 bits of the address.
    case ipv6Network(UInt64)
    /// A host that parses as neither; addresses the kernel reports always parse.
    case unparsed(String)

    init(_ address: SocketAddress) {
        var bytes = [UInt8](repeating: 0, count: 16)
        let family = address.family == .ipv4 ? AF_INET : AF_INET6
        guard uv_inet_pton(family, address.host, &bytes) == 0 else {
            self = .unparsed(address.host)
            return
        }
        if address.family == .ipv4 {
            self = .ipv4(Self.integer(bytes[0..<4]))
        } else if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            self = .ipv4(Self.integer(bytes[12..<16]))
        } else {
            self = .ipv6Network(Self.integer(bytes[0..<8]))
        }
    }

    var description: String {
        switch self {
        case let .ipv4(value):
            (0..<4).map { String(value >> (24 - 8 * $0) & 0xff) }.joined(separator: ".")
        case let .ipv6Network(value):
            (0..<4).map { String(value >> (48 - 16 * $0) & 0xffff, radix: 16) }.joined(separator: ":") + "::/64"
        case let .unparsed(host):
            host
        }
    }

    /// The bytes read as one big-endian integer.
    private static func integer<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>) -> T {
        bytes.reduce(0) { $0 << 8 | T($1) }
    }
}

/// One token bucket (see ``HandshakeRate``). A plain value that keeps no clock: its owner
/// passes the time, so the arithmetic is exact under test.
struct TokenBucket: Sendable {
    /// Tokens as of the last `refill`.
    private(set) var tokens: Double
    private var updated: ContinuousClock.Instant

    /// A full bucket.
    init(_ rate: HandshakeRate, at now: ContinuousClock.Instant) {
        tokens = Double(rate.burst)
        updated = now
    }

    /// The tokens the bucket holds at `now`; a `now` before the last refill adds none.
    func tokens(_ rate: HandshakeRate, at now: ContinuousClock.Instant) -> Double {
        guard now > updated else { return tokens }
        let elapsed = (now - updated).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        return min(Double(rate.burst), tokens + seconds * rate.perSecond)
    }

    /// Whether the bucket has refilled to `burst` by `now`: then it is no different from a new one.
    func isFull(_ rate: HandshakeRate, at now: ContinuousClock.Instant) -> Bool {
        tokens(rate, at: now) >= Double(rate.burst)
    }

    /// Adds the tokens earned up to `now`.
    mutating func refill(_ rate: HandshakeRate, at now: ContinuousClock.Instant) {
        tokens = tokens(rate, at: now)
        updated = max(updated, now)
    }

    /// Takes one token; only after `refill` left at least one.
    mutating func take() {
        tokens -= 1
    }
}

/// The listener's handshake bounds for one ``SessionEndpoint``: handshakes in progress per
/// source (``SessionConfig/maxPendingHandshakesPerAddress``) and the token buckets of
/// ``SessionConfig/handshakeRate``. (The total of handshakes in progress is the endpoint's own
/// counter, which any thread may read.)
///
/// Loop-confined: the endpoint calls it only from its accept callback, its handshakes' hello
/// checks and their completions, which all run on the endpoint's loop thread, so the tables
/// need no lock. Memory stays bounded whatever the callers do:
/// - a source's pending count is dropped when it returns to zero, so there are never more
///   entries than handshakes in progress (at most ``SessionConfig/maxPendingHandshakes``);
/// - a source has a bucket only once it has used a token (an absent bucket is a full one),
///   and at most `maxTrackedSources` buckets are kept. A new source that finds the table at
///   that size sweeps out every bucket that has refilled; if none has, the fullest one is
///   dropped (its source starts over with a full bucket; the total bucket still bounds the
///   work). Every bucket that is not full took a token recently, and tokens come out of the
///   total bucket too, so with sane rates the sweep always frees room.
final class HandshakeAdmission: @unchecked Sendable {
    /// The most per-source buckets kept at once (about 100 bytes each).
    static let defaultMaxTrackedSources = 4096

    private let maxPendingPerSource: Int
    private let limits: HandshakeRateLimits
    private let maxTrackedSources: Int
    private let now: @Sendable () -> ContinuousClock.Instant
    private var pending: [HandshakeSource: Int] = [:]
    private var buckets: [HandshakeSource: TokenBucket] = [:]
    private var total: TokenBucket

    /// `now` must be monotonic; tests pass a clock they move by hand.
    init(
        config: SessionConfig, maxTrackedSources: Int = defaultMaxTrackedSources,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        maxPendingPerSource = config.maxPendingHandshakesPerAddress
        limits = config.handshakeRate
        self.maxTrackedSources = max(1, maxTrackedSources)
        self.now = now
        total = TokenBucket(config.handshakeRate.total, at: now())
    }

    /// Sources with a handshake in progress.
    var sourcesInHandshake: Int { pending.count }

    /// Sources whose bucket is kept (not known to be full).
    var trackedSources: Int { buckets.count }

    /// Counts a new handshake from `source` as in progress and returns nil, or returns
    /// ``SessionCloseReason/tooManyHandshakesFromAddress`` and counts nothing. Every nil must
    /// be paired with one ``finish(from:)``.
    func start(from source: HandshakeSource) -> SessionCloseReason? {
        let running = pending[source, default: 0]
        guard running < maxPendingPerSource else { return .tooManyHandshakesFromAddress }
        pending[source] = running + 1
        return nil
    }

    /// A handshake counted by ``start(from:)`` ended, however it ended.
    func finish(from source: HandshakeSource) {
        guard let running = pending[source] else { return }
        pending[source] = running > 1 ? running - 1 : nil
    }

    /// Takes a token from `source`'s bucket and one from the total bucket and returns nil, or
    /// returns ``SessionCloseReason/handshakeRateLimited(_:)`` naming the empty bucket and
    /// takes nothing. Call it right before the key exchange and signature, once per handshake.
    func admitKeyExchange(from source: HandshakeSource) -> SessionCloseReason? {
        let now = self.now()
        var own: TokenBucket?
        if !limits.perAddress.isUnlimited {
            var bucket = buckets[source] ?? TokenBucket(limits.perAddress, at: now)
            bucket.refill(limits.perAddress, at: now)
            guard bucket.tokens >= 1 else { return .handshakeRateLimited(.address) }
            own = bucket
        }
        if !limits.total.isUnlimited {
            total.refill(limits.total, at: now)
            guard total.tokens >= 1 else { return .handshakeRateLimited(.total) }
            total.take()
        }
        if var own {
            own.take()
            store(own, for: source, at: now)
        }
        return nil
    }

    private func store(_ bucket: TokenBucket, for source: HandshakeSource, at now: ContinuousClock.Instant) {
        if buckets[source] == nil, buckets.count >= maxTrackedSources { makeRoom(at: now) }
        buckets[source] = bucket
    }

    /// Drops every bucket that has refilled; if none has, drops the fullest.
    private func makeRoom(at now: ContinuousClock.Instant) {
        let rate = limits.perAddress
        buckets = buckets.filter { !$0.value.isFull(rate, at: now) }
        guard buckets.count >= maxTrackedSources,
              let fullest = buckets.max(by: { $0.value.tokens(rate, at: now) < $1.value.tokens(rate, at: now) })
        else { return }
        buckets[fullest.key] = nil
    }
}
