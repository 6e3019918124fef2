import ParleyCrypto
import ParleyLocks
import ParleyNode
import ParleyTransport

/// Dials Mallory and redials with backoff whenever the link ends, on the node's clock.
final class SimKeeper: LinkKeeper, @unchecked Sendable {
    private let network: SimNetwork
    private let incarnation: Int
    private let clock: any NodeClock
    private let random: any NodeRandom
    private let peer: PublicKey
    private let address: SocketAddress
    private let retry: RetryPolicy
    private let onEvent: @Sendable (LinkDialEvent) -> Void
    private let state = Locked<(task: Task<Void, Never>?, link: SimLink?, stopped: Bool)>((nil, nil, false))

    init(
        network: SimNetwork, incarnation: Int, clock: any NodeClock, random: any NodeRandom, peer: PublicKey,
        address: SocketAddress, retry: RetryPolicy, onEvent: @escaping @Sendable (LinkDialEvent) -> Void
    ) {
        self.network = network
        self.incarnation = incarnation
        self.clock = clock
        self.random = random
        self.peer = peer
        self.address = address
        self.retry = retry
        self.onEvent = onEvent
    }

    func start() {
        state.withLock { state in
            guard state.task == nil, !state.stopped else { return }
            state.task = Task { await self.run() }
        }
    }

    func stop() async {
        let (task, link) = state.withLock { state -> (Task<Void, Never>?, SimLink?) in
            state.stopped = true
            defer {
                state.task = nil
                state.link = nil
            }
            return (state.task, state.link)
        }
        task?.cancel()
        link?.close(reason: "link stopped")
    }

    private func run() async {
        var attempt = 0
        while !Task.isCancelled, network.isCurrent(incarnation), !state.withLock({ $0.stopped }) {
            attempt += 1
            // Full jitter, from the simulation's generator rather than the system's.
            let ceiling = retry.backoffCeiling(afterAttempt: min(attempt, 16))
            let delay = Duration.milliseconds(random.integer(in: 0...max(0, Int(ceiling / .milliseconds(1)))))
            switch network.honestDial(address, expecting: peer, incarnation: incarnation, now: clock.now) {
            case let .success(link):
                attempt = 0
                state.withLock { $0.link = link }
                onEvent(.connected(link))
                await link.waitUntilClosed()
                if Task.isCancelled { return }
                state.withLock { $0.link = nil }
                onEvent(.disconnected(.peerClosed(nil), retryIn: delay))
            case let .failure(error):
                if case .crashed = error { return }
                onEvent(.attemptFailed(error, retryIn: delay))
            }
            do { try await clock.sleep(for: delay) } catch { return }
        }
    }
}
