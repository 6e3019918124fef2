import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// One client of the daemon: reads its requests in order and answers each; runs one
/// task per event subscription. Everything here affects this client only.
struct DevchainConnection: Sendable {
    let server: DevchainServer
    let session: Session

    func serve() async {
        let subscriptions = Subscriptions()
        defer {
            for task in subscriptions.tasks.withLock({ Array($0.values) }) { task.cancel() }
            server.closed(session)
        }
        for await event in session.events {
            switch event {
            case let .message(bytes):
                guard await handle(bytes, subscriptions: subscriptions) else { return }
            case .peerSilent:
                continue
            case let .closed(reason):
                if case .peerClosed = reason { return }
                server.configuration.log("client \(session.peer.shortID) at \(session.remoteAddress) closed: \(reason)")
                return
            }
        }
    }

    /// Answers one message; false when the client was disconnected.
    private func handle(_ bytes: [UInt8], subscriptions: Subscriptions) async -> Bool {
        let request: DevchainRequest
        do {
            request = try DevchainRequest(wireBytes: bytes)
        } catch {
            disconnect("undecodable request (\(error))")
            return false
        }
        let result: DevchainResult
        var subscribeAfter: UInt64?
        switch request.operation {
        case let .subscribe(after):
            let count = subscriptions.tasks.withLock { $0.count }
            if count >= Int(DevchainLimits.maxSubscriptionsPerClient) {
                result = .failed(.tooManySubscriptions(limit: DevchainLimits.maxSubscriptionsPerClient))
            } else if subscriptions.tasks.withLock({ $0[request.id] != nil }) {
                result = .failed(.badRequest("subscription \(request.id) already exists"))
            } else {
                result = .ok([])
                subscribeAfter = after
            }
        case let .unsubscribe(id):
            subscriptions.tasks.withLock { $0.removeValue(forKey: id) }?.cancel()
            result = .ok([])
        default:
            result = server.handle(request.operation, caller: session.peer)
        }
        do {
            try await session.send(DevchainServerMessage.response(id: request.id, result).wireBytes)
        } catch {
            return false
        }
        if let after = subscribeAfter {
            let task = Task { await stream(subscription: request.id, after: after) }
            subscriptions.tasks.withLock { $0[request.id] = task }
        }
        return true
    }

    /// Backfill, then live events, in order, each once. `send` waits on the session's
    /// backpressure, so a slow client delays only itself; one that stops reading while
    /// the chain moves on is closed by the server's lag check (`maxSubscriberLag`).
    private func stream(subscription: UInt64, after: UInt64) async {
        let cursor = SubscriberCursor(session: session, after: after)
        server.track(cursor)
        defer { server.untrack(cursor) }
        var sent = after
        while let (events, head) = await server.events(after: sent) {
            do {
                try await session.send(DevchainServerMessage.events(subscription: subscription, events).wireBytes)
            } catch {
                return
            }
            sent = events.last?.sequence ?? sent
            cursor.sent.store(sent, ordering: .relaxed)
            if sent == head { cursor.caughtUp.store(true, ordering: .relaxed) }
        }
    }

    private func disconnect(_ reason: String) {
        server.configuration.log("closing client \(session.peer.shortID) at \(session.remoteAddress): \(reason)")
        session.close(reason: reason)
    }
}

/// The running subscription tasks of one connection, by subscription id.
final class Subscriptions: Sendable {
    let tasks = Locked<[UInt64: Task<Void, Never>]>([:])
}
