import ParleyCrypto
import ParleyLocks
import ParleyNode
import ParleyTransport

/// The honest node's end of one simulated link.
final class SimLink: MessageLink, @unchecked Sendable {
    let peer: PublicKey
    let remoteDescription: String
    let id: Int
    private unowned let network: SimNetwork
    private let state = Locked(LinkEnd())

    private struct LinkEnd {
        var handler: (@Sendable ([UInt8]) -> Void)?
        /// Messages that arrived before `run` installed the handler.
        var early: [[UInt8]] = []
        var closed: SessionCloseReason?
        var runWaiter: CheckedContinuation<SessionCloseReason, Never>?
        var senders: [CheckedContinuation<Void, any Error>] = []
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(network: SimNetwork, id: Int, peer: PublicKey, remote: String) {
        self.network = network
        self.id = id
        self.peer = peer
        remoteDescription = remote
    }

    func send(_ message: [UInt8]) async throws {
        if state.withLock({ $0.closed }) != nil { throw SessionError.closed(.localClose("link closed")) }
        network.honestSend(message, on: id)
        guard network.mustWait(id) else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let closed = state.withLock { end -> Bool in
                if end.closed != nil { return true }
                end.senders.append(continuation)
                return false
            }
            if closed { continuation.resume(throwing: SessionError.closed(.localClose("link closed"))) }
        }
    }

    func close(reason: String) {
        network.close(id, reason: reason, byHonest: true)
    }

    func run(delivering handler: @escaping @Sendable ([UInt8]) -> Void) async -> SessionCloseReason {
        let early = state.withLock { end -> [[UInt8]] in
            end.handler = handler
            defer { end.early = [] }
            return end.early
        }
        for message in early { handler(message) }
        return await withCheckedContinuation { continuation in
            let closed = state.withLock { end -> SessionCloseReason? in
                if let closed = end.closed { return closed }
                end.runWaiter = continuation
                return nil
            }
            if let closed { continuation.resume(returning: closed) }
        }
    }

    func deliver(_ bytes: [UInt8]) {
        let handler = state.withLock { end -> (@Sendable ([UInt8]) -> Void)? in
            guard end.closed == nil else { return nil }
            if end.handler == nil { end.early.append(bytes) }
            return end.handler
        }
        handler?(bytes)
    }

    func releaseSenders() {
        let senders = state.withLock { end -> [CheckedContinuation<Void, any Error>] in
            defer { end.senders = [] }
            return end.senders
        }
        for sender in senders { sender.resume() }
    }

    func ended(_ reason: SessionCloseReason) {
        let woken = state.withLock { end -> (CheckedContinuation<SessionCloseReason, Never>?, [CheckedContinuation<Void, any Error>], [CheckedContinuation<Void, Never>])? in
            guard end.closed == nil else { return nil }
            end.closed = reason
            defer {
                end.runWaiter = nil
                end.senders = []
                end.closeWaiters = []
                end.handler = nil
            }
            return (end.runWaiter, end.senders, end.closeWaiters)
        }
        guard let (waiter, senders, closeWaiters) = woken else { return }
        waiter?.resume(returning: reason)
        for sender in senders { sender.resume(throwing: SessionError.closed(reason)) }
        for closeWaiter in closeWaiters { closeWaiter.resume() }
    }

    var isClosed: Bool { state.withLock { $0.closed != nil } }

    /// Returns once the link has closed.
    func waitUntilClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let closed = state.withLock { end -> Bool in
                if end.closed != nil { return true }
                end.closeWaiters.append(continuation)
                return false
            }
            if closed { continuation.resume() }
        }
    }
}

struct SimListener: LinkListener {
    let network: SimNetwork
    let incarnation: Int
    let localAddress: SocketAddress

    func close() async { network.stopListening(incarnation: incarnation) }
}
