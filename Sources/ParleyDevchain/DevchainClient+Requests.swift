import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// Requests to the daemon: each with an id, a deadline and its answer, resent on a new session when one drops.
extension DevchainClient {
    /// How one request ended.
    enum Outcome: Sendable {
        case ok([UInt8])
        case refused(SettlementError)
        case failed(DevchainRefusal)
        /// Sent, and then lost with its connection or not answered in time.
        case transport(String)
        /// Never sent: the client closed, no daemon answered, or the daemon proved another key.
        case unsent(DevchainError)

        /// For the `SettlementAdapter` methods: chain refusals as they are, everything else `.transport`.
        func settlement() throws(SettlementError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw error
            case let .failed(refusal):
                switch refusal {
                case .faucetNotAllowed, .timeTravelNotAllowed: throw .notPermitted("\(refusal)")
                default: throw .transport("the devchain refused the request: \(refusal)")
                }
            case let .transport(why), let .unsent(.transport(why)): throw .transport(why)
            case let .unsent(error): throw .transport(error.description)
            }
        }

        var metricsOutcome: ChainCallMetrics.Outcome {
            switch self {
            case .ok: .ok
            case .refused, .failed: .refused
            case .transport, .unsent: .transport
            }
        }

        /// For the devchain-only methods.
        func devchain() throws(DevchainError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw .transport("unexpected chain refusal: \(error)")
            case let .failed(refusal): throw .refused(refusal)
            case let .transport(why): throw .transport(why)
            case let .unsent(error): throw error
            }
        }
    }

    func time(_ operation: DevchainRequest.Operation) async throws(DevchainError) -> ChainTime {
        try Self.decode(try await request(operation).devchain(), DevchainError.self) { bytes throws(WireError) in
            try ChainTime(wireBytes: bytes)
        }
    }

    /// An answer that does not decode means the daemon speaks another protocol: a transport failure.
    static func decode<T, E: Error>(
        _ payload: [UInt8], _ failure: E.Type, _ decoder: ([UInt8]) throws(WireError) -> T
    ) throws(E) -> T where E: TransportFailure {
        do {
            return try decoder(payload)
        } catch {
            throw E.transport("unreadable answer from the devchain: \(error)")
        }
    }

    /// Sends one request on the current session (waiting up to `connectTimeout` for one if
    /// needed) and waits up to `requestTimeout` for its answer.
    /// Reads change nothing, so one lost with its connection is sent again on the next session
    /// (within `connectTimeout`); transactions and clock moves are not, and nothing that went
    /// unanswered is (see the type's comment).
    func request(_ operation: DevchainRequest.Operation) async -> Outcome {
        let start = ContinuousClock.now
        let deadline = start + connectTimeout
        while true {
            let outcome = await requestOnce(operation)
            guard case let .transport(why) = outcome, why == Self.lostInFlight, operation.isRead,
                ContinuousClock.now < deadline, !state.withLock({ $0.isClosed })
            else {
                if let call = operation.metricsCall { metrics.record(call, since: start, outcome.metricsOutcome) }
                return outcome
            }
        }
    }

    func requestOnce(_ operation: DevchainRequest.Operation) async -> Outcome {
        let session: Session
        switch await self.session() {
        case let .success(current): session = current
        case let .failure(error): return .unsent(error)
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let id = state.withLock { state -> UInt64? in
                guard state.session === session else { return nil }
                let id = state.takeID()
                state.pending[id] = Pending(
                    session: ObjectIdentifier(session), continuation: continuation,
                    deadline: .now + requestTimeout, isRead: operation.isRead)
                if state.sweeper == nil { state.sweeper = Task { [weak self] in await self?.sweep() } }
                return id
            }
            guard let id else { return continuation.resume(returning: .transport(Self.lostInFlight)) }
            send(DevchainRequest(id: id, operation: operation), on: session)
        }
    }

    /// Fails each pending request whose deadline passed, sleeping until the next deadline;
    /// ends (clearing `State.sweeper`) when nothing is pending or the client closed. Every
    /// request gets the same timeout, so a request added later never has an earlier deadline
    /// than the one slept towards.
    func sweep() async {
        while true {
            let (expired, next) = state.withLock { state -> ([Pending], ContinuousClock.Instant?) in
                let now = ContinuousClock.now
                var expired: [Pending] = []
                var next: ContinuousClock.Instant?
                for (id, request) in state.pending {
                    if request.deadline <= now {
                        expired.append(request)
                        state.pending[id] = nil
                    } else {
                        next = min(next ?? request.deadline, request.deadline)
                    }
                }
                if next == nil || Task.isCancelled { state.sweeper = nil }
                return (expired, Task.isCancelled ? nil : next)
            }
            for request in expired { request.resume(returning: .transport(unansweredMessage(isRead: request.isRead))) }
            guard let next else { return }
            do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
        }
    }

    static let lostInFlight =
        "the connection to the devchain dropped with the request in flight; it may or may not have been applied, re-read chain state before retrying"

    /// Why a request failed whose answer did not come within `requestTimeout`.
    func unansweredMessage(isRead: Bool) -> String {
        let head = "no answer from the devchain at \(address) within \(requestTimeout)"
        return isRead
            ? "\(head): the daemon is stopped, wedged or overloaded"
            : "\(head); the request may or may not have been applied, re-read chain state before retrying"
    }

    func send(_ request: DevchainRequest, on session: Session) {
        let bytes = request.wireBytes
        Task {
            do {
                try await session.send(bytes)
            } catch {
                fail(request.id, .transport(Self.lostInFlight))
            }
        }
    }

    /// Ends request `id` with `outcome`, unless it already ended: then a late answer or a send
    /// failure does nothing.
    func fail(_ id: UInt64, _ outcome: Outcome) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: outcome)
    }

    /// The current session, or the next one within `connectTimeout`. Fails at once when the
    /// client is closed or the address proved another key than `daemonKey` on the latest dial.
    func session() async -> Result<Session, DevchainError> {
        let (ready, waiterID) = state.withLock { state -> (Result<Session, DevchainError>?, UInt64) in
            (sessionNow(state), state.takeID())
        }
        // The usual case, connected: no timer to make.
        if let ready { return ready }
        let timeout = connectTimeout
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout) } catch { return }
            guard let self else { return }
            let (waiter, lastFailure) = state.withLock {
                ($0.sessionWaiters.removeValue(forKey: waiterID), $0.lastDialFailure)
            }
            let why = "no devchain answered at \(address) within \(timeout)" + (lastFailure.map { " (last attempt: \($0))" } ?? "")
            waiter?.resume(returning: .failure(.transport(why)))
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: SessionWaiter) in
            let ready = state.withLock { state -> Result<Session, DevchainError>? in
                if let ready = sessionNow(state) { return ready }
                state.sessionWaiters[waiterID] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// What `session()` returns without waiting: the session, or why there will be none; nil to wait.
    func sessionNow(_ state: State) -> Result<Session, DevchainError>? {
        if state.isClosed { return .failure(.transport("the client was closed")) }
        if let session = state.session { return .success(session) }
        if let proved = state.wrongKey { return .failure(wrongKey(proved)) }
        return nil
    }

    func wrongKey(_ proved: PublicKey) -> DevchainError {
        .wrongDaemonKey(address: address, pinned: daemonKey, proved: proved)
    }
}
