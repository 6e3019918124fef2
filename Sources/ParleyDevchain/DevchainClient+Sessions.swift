import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// The session to the daemon: dialled, redialled after a drop, and resubscribed from the last event delivered.
extension DevchainClient {
    /// Notes why a dial failed. A daemon that proved another key fails every waiting request
    /// at once: waiting for it to change its key would only delay the error.
    func dialFailed(_ error: any Error) {
        var proved: PublicKey?
        if case let .notEstablished(.handshakeFailed(.unexpectedPeer(_, got)))? = error as? SessionError { proved = got }
        let waiters = state.withLock { state -> [SessionWaiter] in
            state.lastDialFailure = "\(error)"
            state.wrongKey = proved
            guard proved != nil else { return [] }
            defer { state.sessionWaiters = [:] }
            return Array(state.sessionWaiters.values)
        }
        if let proved { for waiter in waiters { waiter.resume(returning: .failure(wrongKey(proved))) } }
    }

    /// Makes `session` the current one and resubscribes every stream on it; false if the client closed.
    func connected(_ session: Session) -> Bool {
        let (open, waiters, subscribes) = state.withLock { state -> (Bool, [SessionWaiter], [(UInt64, UInt64)]) in
            guard !state.isClosed else { return (false, [], []) }
            state.session = session
            state.wrongKey = nil
            state.lastDialFailure = nil
            let waiters = Array(state.sessionWaiters.values)
            state.sessionWaiters = [:]
            let subscribes = state.streams.keys.sorted().map { key in (Self.subscribe(key, on: session, in: &state), key) }
            return (true, waiters, subscribes)
        }
        guard open else { return false }
        for waiter in waiters { waiter.resume(returning: .success(session)) }
        for (id, key) in subscribes { send(subscribeRequest(id, key: key), on: session) }
        return true
    }

    /// Records a new daemon subscription for stream `key`; returns its id.
    static func subscribe(_ key: UInt64, on session: Session, in state: inout State) -> UInt64 {
        let id = state.takeID()
        state.subscriptions[id] = (key, ObjectIdentifier(session))
        state.streams[key]?.subscription = id
        return id
    }

    func subscribeRequest(_ id: UInt64, key: UInt64) -> DevchainRequest {
        let after = state.withLock { $0.streams[key]?.lastDelivered } ?? 0
        return DevchainRequest(id: id, operation: .subscribe(after: after))
    }

    /// Handles `session`'s messages until it ends, then fails what was in flight on it.
    func read(_ session: Session) async {
        for await event in session.events {
            guard case let .message(bytes) = event else { continue }
            do {
                switch try DevchainServerMessage(wireBytes: bytes) {
                case let .response(id, result): answered(id, result)
                case let .events(subscription, events): deliver(events, to: subscription)
                }
            } catch {
                session.close(reason: "undecodable message from the devchain: \(error)")
            }
        }
        // The next session may already be up: clean up only what belonged to this one.
        let ended = ObjectIdentifier(session)
        let pending = state.withLock { state -> [Pending] in
            if state.session === session {
                state.session = nil
                for key in state.streams.keys { state.streams[key]?.subscription = nil }
            }
            state.subscriptions = state.subscriptions.filter { $0.value.session != ended }
            let lost = state.pending.filter { $0.value.session == ended }
            for id in lost.keys { state.pending[id] = nil }
            return Array(lost.values)
        }
        for request in pending { request.resume(returning: .transport(Self.lostInFlight)) }
    }

    /// An answer for a request that already ended (it timed out) finds nothing and is dropped.
    func answered(_ id: UInt64, _ result: DevchainResult) {
        let (request, stream) = state.withLock { state in
            (state.pending.removeValue(forKey: id), state.subscriptions[id].flatMap { state.streams[$0.key] })
        }
        if let request {
            switch result {
            case let .ok(payload): request.resume(returning: .ok(payload))
            case let .refused(error): request.resume(returning: .refused(error))
            case let .failed(refusal): request.resume(returning: .failed(refusal))
            }
        } else if let stream, case let .failed(refusal) = result {
            stream.continuation.finish(throwing: SettlementError.transport("the devchain refused the subscription: \(refusal)"))
        }
    }

    func deliver(_ events: [ChainEvent], to subscription: UInt64) {
        state.withLock { state in
            guard let key = state.subscriptions[subscription]?.key, var stream = state.streams[key] else { return }
            // Yielding under the lock keeps order; the sequence check makes resubscription exactly-once.
            for event in events where event.sequence > stream.lastDelivered {
                stream.continuation.yield(event)
                stream.lastDelivered = event.sequence
            }
            state.streams[key] = stream
        }
    }

    func streamEnded(_ key: UInt64) {
        let unsubscribe = state.withLock { state -> (Session, UInt64)? in
            guard let stream = state.streams.removeValue(forKey: key) else { return nil }
            guard let id = stream.subscription, let session = state.session else { return nil }
            state.subscriptions[id] = nil
            return (session, id)
        }
        guard let (session, id) = unsubscribe else { return }
        let request = state.withLock { DevchainRequest(id: $0.takeID(), operation: .unsubscribe(subscription: id)) }
        send(request, on: session)
    }
}
