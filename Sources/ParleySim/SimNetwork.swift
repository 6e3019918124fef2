import ParleyCrypto
import ParleyLocks
import ParleyNode
import ParleyTransport

/// The in-memory network between the honest node and Mallory, in virtual time.
///
/// One honest node (the real `Node`, through ``LinkNetwork``) and one adversary, each at a
/// fixed address. Every message is scheduled for delivery at a virtual instant drawn from
/// the network's seeded generator; the simulator delivers what is due
/// (``deliverDue(now:)``) between running jobs. Faults, all seeded:
/// - **delay**: up to ``Conditions/maxDelay`` per message;
/// - **loss** and **duplication** of single messages (``Conditions/dropRate``,
///   ``Conditions/duplicateRate``);
/// - **reordering**: with ``Conditions/reorder``, later messages may overtake earlier
///   ones on one link (a real session never does this; the channel layer must stay safe
///   when the transport below it misbehaves, so the simulator checks that too);
/// - **partitions**: ``partition(until:)`` closes every link and refuses new ones until
///   the given instant.
///
/// The honest node's crash (``crashHonest()``) ends its *incarnation*: its links close,
/// its listener and keepers stop, and nothing of the old life can connect again. The next
/// life gets a fresh ``view(clock:)``.
public final class SimNetwork: @unchecked Sendable {
    public struct Conditions: Sendable {
        public var maxDelay: Duration = .milliseconds(50)
        public var dropRate = 0.0
        public var duplicateRate = 0.0
        public var reorder = false
        /// Bytes Mallory may leave unread on one link before the honest sender waits.
        public var highWater = 256 * 1024

        public init(
            maxDelay: Duration = .milliseconds(50), dropRate: Double = 0, duplicateRate: Double = 0, reorder: Bool = false
        ) {
            self.maxDelay = maxDelay
            self.dropRate = dropRate
            self.duplicateRate = duplicateRate
            self.reorder = reorder
        }
    }

    /// What Mallory's end sees.
    public enum MalloryEvent: Sendable {
        case connected(link: Int, dialedByHonest: Bool)
        case message(link: Int, [UInt8])
        case closed(link: Int, reason: String)
    }

    public let honestKey: PublicKey
    public let malloryKey: PublicKey
    public let honestAddress: SocketAddress
    public let malloryAddress: SocketAddress

    private let state: Locked<State>
    /// Called (outside the lock) for everything that reaches Mallory.
    private let toMallory: @Sendable (MalloryEvent) -> Void
    /// Virtual now (the simulator's clock).
    let now: @Sendable () -> Duration
    /// Sees every message as sent, before any fault (true: from the honest node).
    private let tap: @Sendable ([UInt8], Bool) -> Void

    private struct Delivery {
        let at: Duration
        let sequence: UInt64
        let link: Int
        let toHonest: Bool
        let bytes: [UInt8]
    }

    private struct LinkState {
        let honestEnd: SimLink
        let incarnation: Int
        /// Latest delivery instant per direction, to keep order when reordering is off.
        var lastToHonest: Duration = .zero
        var lastToMallory: Duration = .zero
        var unreadByMallory = 0
    }

    private struct Listening {
        let incarnation: Int
        let accept: @Sendable (PublicKey) -> Bool
        let onLink: @Sendable (any MessageLink) -> Void
    }

    private struct State {
        var random: SeededRandom
        var conditions: Conditions
        var incarnation = 0
        var listening: Listening?
        var links: [Int: LinkState] = [:]
        var nextLink = 1
        var deliveries: [Delivery] = []
        var nextSequence: UInt64 = 0
        var partitionedUntil: Duration = .zero
        /// Whether Mallory answers the honest node's dials.
        var malloryListening = true
        /// Whether Mallory reads: while false, messages to her wait and the sender's budget fills.
        var malloryReading = true
        var stats = Statistics()
    }

    /// What the network did, for the campaign report.
    public struct Statistics: Sendable {
        public var delivered = 0
        public var dropped = 0
        public var duplicated = 0
        public var linksMade = 0
        public var dialsRefused = 0
    }

    public init(
        honestKey: PublicKey, malloryKey: PublicKey, seed: UInt64, conditions: Conditions = Conditions(),
        now: @escaping @Sendable () -> Duration, toMallory: @escaping @Sendable (MalloryEvent) -> Void,
        tap: @escaping @Sendable ([UInt8], Bool) -> Void = { _, _ in }
    ) throws {
        self.honestKey = honestKey
        self.malloryKey = malloryKey
        honestAddress = try SocketAddress("10.0.0.1:7000")
        malloryAddress = try SocketAddress("10.0.0.2:7000")
        state = Locked(State(random: SeededRandom(seed: seed), conditions: conditions))
        self.now = now
        self.toMallory = toMallory
        self.tap = tap
    }

    public var statistics: Statistics { state.withLock { $0.stats } }

    public var conditions: Conditions {
        get { state.withLock { $0.conditions } }
        set { state.withLock { $0.conditions = newValue } }
    }

    /// The honest node's network for its current life; `clock` and `random` pace its redials.
    public func view(clock: any NodeClock, random: any NodeRandom) -> any LinkNetwork {
        View(network: self, incarnation: state.withLock { $0.incarnation }, clock: clock, random: random)
    }

    // MARK: - Faults

    /// The honest process died: every link closes (Mallory hears of it), and nothing of
    /// the old life listens or dials again.
    public func crashHonest() {
        let closed = state.withLock { state -> [(Int, SimLink)] in
            state.incarnation += 1
            state.listening = nil
            let links = state.links.map { ($0.key, $0.value.honestEnd) }
            state.links = [:]
            state.deliveries.removeAll()
            return links.sorted { $0.0 < $1.0 }
        }
        for (id, link) in closed {
            link.ended(.transport(.localClose("the process crashed")))
            toMallory(.closed(link: id, reason: "the honest process crashed"))
        }
    }

    /// Cuts every link and refuses new ones until `until`.
    public func partition(until: Duration) {
        let cut = state.withLock { state -> [Int] in
            state.partitionedUntil = max(state.partitionedUntil, until)
            return state.links.keys.sorted()
        }
        for id in cut { close(id, reason: "network partition", byHonest: nil) }
    }

    public func isPartitioned(at now: Duration) -> Bool { state.withLock { now < $0.partitionedUntil } }

    /// Whether Mallory answers dials from the honest node.
    public func setMalloryListening(_ on: Bool) { state.withLock { $0.malloryListening = on } }

    /// Whether Mallory reads what arrives; while she does not, the honest sender's budget fills.
    public func setMalloryReading(_ on: Bool, now: Duration) {
        state.withLock { $0.malloryReading = on }
        if on { releaseHeldDeliveries(now: now) }
    }

    // MARK: - Mallory's end

    /// Mallory dials the honest node. Nil when it does not listen, refuses her key, or the
    /// network is partitioned.
    public func malloryDial(now: Duration) -> Int? {
        let made = state.withLock { state -> (Int, SimLink, Listening)? in
            guard now >= state.partitionedUntil, let listening = state.listening else {
                state.stats.dialsRefused += 1
                return nil
            }
            let id = state.nextLink
            state.nextLink += 1
            let link = SimLink(network: self, id: id, peer: malloryKey, remote: malloryAddress.description)
            state.links[id] = LinkState(honestEnd: link, incarnation: listening.incarnation)
            state.stats.linksMade += 1
            return (id, link, listening)
        }
        guard let (id, link, listening) = made else { return nil }
        guard listening.accept(malloryKey) else {
            close(id, reason: "refused by the honest node", byHonest: true)
            return nil
        }
        listening.onLink(link)
        toMallory(.connected(link: id, dialedByHonest: false))
        return id
    }

    /// Mallory sends `bytes` on `link` (subject to the network's faults).
    public func mallorySend(_ bytes: [UInt8], on link: Int, now: Duration) {
        tap(bytes, false)
        transmit(bytes, on: link, toHonest: true, now: now)
    }

    /// Mallory closes `link`.
    public func malloryClose(_ link: Int) {
        close(link, reason: "closed by Mallory", byHonest: false)
    }

    /// Links open right now, by id.
    public var openLinks: [Int] { state.withLock { $0.links.keys.sorted() } }

    // MARK: - Delivery

    /// The next instant a message is due, if any is in flight.
    public var nextDelivery: Duration? {
        state.withLock { state in
            let reading = state.malloryReading
            return state.deliveries.filter { $0.toHonest || reading }.map(\.at).min()
        }
    }

    /// Delivers every message due at `now`, in (instant, sequence) order. Returns how many.
    @discardableResult
    public func deliverDue(now: Duration) -> Int {
        var count = 0
        while let next = takeDue(now: now) {
            count += 1
            if next.delivery.toHonest {
                next.link?.deliver(next.delivery.bytes)
            } else {
                toMallory(.message(link: next.delivery.link, next.delivery.bytes))
            }
        }
        return count
    }

    private func takeDue(now: Duration) -> (delivery: Delivery, link: SimLink?)? {
        var released: [SimLink] = []
        let due = state.withLock { state -> (Delivery, SimLink?)? in
            var best: Int?
            for (index, delivery) in state.deliveries.enumerated() where delivery.at <= now {
                if !delivery.toHonest && !state.malloryReading { continue }
                if let current = best {
                    let other = state.deliveries[current]
                    if (delivery.at, delivery.sequence) < (other.at, other.sequence) { best = index }
                } else {
                    best = index
                }
            }
            guard let best else { return nil }
            let delivery = state.deliveries.remove(at: best)
            guard var link = state.links[delivery.link] else { return (delivery, nil) }
            state.stats.delivered += 1
            if !delivery.toHonest {
                link.unreadByMallory -= delivery.bytes.count
                if link.unreadByMallory < state.conditions.highWater { released.append(link.honestEnd) }
                state.links[delivery.link] = link
            }
            return (delivery, link.honestEnd)
        }
        for link in released { link.releaseSenders() }
        guard let due else { return nil }
        // A message for a link that closed meanwhile is lost with it.
        if due.1 == nil { return takeDue(now: now) }
        return (due.0, due.1)
    }

    private func releaseHeldDeliveries(now: Duration) {
        let links = state.withLock { $0.links.values.map(\.honestEnd) }
        for link in links { link.releaseSenders() }
    }

    /// Schedules `bytes` on `link`; false when the sender must wait (Mallory's unread bytes
    /// are past the high-water mark). Throws when the link is closed.
    /// A message from the honest node (through its link's `send`).
    func honestSend(_ bytes: [UInt8], on id: Int) {
        tap(bytes, true)
        transmit(bytes, on: id, toHonest: false, now: now())
    }

    func transmit(_ bytes: [UInt8], on id: Int, toHonest: Bool, now: Duration) {
        state.withLock { state in
            guard var link = state.links[id] else { return }
            var random = state.random
            defer { state.random = random }
            if Double.random(in: 0..<1, using: &random) < state.conditions.dropRate {
                state.stats.dropped += 1
                return
            }
            let copies = Double.random(in: 0..<1, using: &random) < state.conditions.duplicateRate ? 2 : 1
            if copies == 2 { state.stats.duplicated += 1 }
            for _ in 0..<copies {
                let delayNanos = max(Int64(1), Int64(state.conditions.maxDelay.components.seconds) * 1_000_000_000
                    + state.conditions.maxDelay.components.attoseconds / 1_000_000_000)
                var at = now + .nanoseconds(Int64.random(in: 1...delayNanos, using: &random))
                if !state.conditions.reorder {
                    at = max(at, toHonest ? link.lastToHonest : link.lastToMallory)
                }
                if toHonest { link.lastToHonest = at } else { link.lastToMallory = at }
                if !toHonest { link.unreadByMallory += bytes.count }
                state.deliveries.append(
                    Delivery(at: at, sequence: state.nextSequence, link: id, toHonest: toHonest, bytes: bytes))
                state.nextSequence += 1
            }
            state.links[id] = link
        }
    }

    func mustWait(_ id: Int) -> Bool {
        state.withLock { state in
            guard let link = state.links[id] else { return false }
            return link.unreadByMallory >= state.conditions.highWater
        }
    }

    /// Closes `id`; `byHonest` nil for the network itself (a partition).
    func close(_ id: Int, reason: String, byHonest: Bool?) {
        guard let link = state.withLock({ state -> SimLink? in
            let link = state.links.removeValue(forKey: id)?.honestEnd
            state.deliveries.removeAll { $0.link == id }
            return link
        }) else { return }
        switch byHonest {
        case true?: link.ended(.localClose(reason))
        case false?: link.ended(.peerClosed(reason))
        case nil: link.ended(.transport(.localClose(reason)))
        }
        toMallory(.closed(link: id, reason: reason))
    }

    // MARK: - The honest node's side

    func listen(
        incarnation: Int, accept: @escaping @Sendable (PublicKey) -> Bool,
        onLink: @escaping @Sendable (any MessageLink) -> Void
    ) -> Bool {
        state.withLock { state in
            guard state.incarnation == incarnation else { return false }
            state.listening = Listening(incarnation: incarnation, accept: accept, onLink: onLink)
            return true
        }
    }

    func stopListening(incarnation: Int) {
        state.withLock { state in
            if state.listening?.incarnation == incarnation { state.listening = nil }
        }
    }

    /// The honest node dials `address`: a link to Mallory, or why not.
    func honestDial(_ address: SocketAddress, expecting peer: PublicKey, incarnation: Int, now: Duration)
        -> Result<SimLink, SimDialError>
    {
        let made = state.withLock { state -> Result<(Int, SimLink), SimDialError> in
            guard state.incarnation == incarnation else { return .failure(.crashed) }
            guard now >= state.partitionedUntil else {
                state.stats.dialsRefused += 1
                return .failure(.unreachable("network partition"))
            }
            guard address == malloryAddress, peer == malloryKey else {
                state.stats.dialsRefused += 1
                return .failure(.unreachable("nobody at \(address) with that key"))
            }
            guard state.malloryListening else {
                state.stats.dialsRefused += 1
                return .failure(.unreachable("connection refused"))
            }
            let id = state.nextLink
            state.nextLink += 1
            let link = SimLink(network: self, id: id, peer: malloryKey, remote: malloryAddress.description)
            state.links[id] = LinkState(honestEnd: link, incarnation: incarnation)
            state.stats.linksMade += 1
            return .success((id, link))
        }
        switch made {
        case let .failure(error): return .failure(error)
        case let .success((id, link)):
            toMallory(.connected(link: id, dialedByHonest: true))
            return .success(link)
        }
    }

    func isCurrent(_ incarnation: Int) -> Bool { state.withLock { $0.incarnation == incarnation } }

    /// The honest node's ``LinkNetwork`` for one life.
    private struct View: LinkNetwork {
        let network: SimNetwork
        let incarnation: Int
        let clock: any NodeClock
        let random: any NodeRandom

        func listen(
            on address: SocketAddress, accept: @escaping @Sendable (PublicKey) -> Bool,
            onRefused: @escaping @Sendable (String, SessionCloseReason) -> Void,
            onLink: @escaping @Sendable (any MessageLink) -> Void
        ) async throws -> any LinkListener {
            guard network.listen(incarnation: incarnation, accept: accept, onLink: onLink) else {
                throw SimDialError.crashed
            }
            return SimListener(network: network, incarnation: incarnation, localAddress: network.honestAddress)
        }

        func keepLink(
            to peer: PublicKey, at address: SocketAddress, retry: RetryPolicy,
            onEvent: @escaping @Sendable (LinkDialEvent) -> Void
        ) -> any LinkKeeper {
            SimKeeper(
                network: network, incarnation: incarnation, clock: clock, random: random, peer: peer, address: address,
                retry: retry, onEvent: onEvent)
        }

        func shutDown() async {
            network.stopListening(incarnation: incarnation)
        }
    }
}

/// Why a simulated dial failed.
public enum SimDialError: Error, Sendable, CustomStringConvertible {
    case unreachable(String)
    /// The dialling process crashed (a task of a dead incarnation).
    case crashed

    public var description: String {
        switch self {
        case let .unreachable(why): "unreachable: \(why)"
        case .crashed: "the process crashed"
        }
    }
}
