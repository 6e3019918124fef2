import DequeModule
import ParleyLocks
import ParleyWire

/// A session's events as an async sequence with a bounded buffer. One consumer only.
/// The sequence ends after `.closed`.
public struct SessionEvents: AsyncSequence, Sendable {
    public typealias Element = SessionEvent
    let inbox: SessionInbox

    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: SessionInbox

        public mutating func next() async -> SessionEvent? {
            await inbox.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(inbox: inbox)
    }

    /// Message bytes received and not yet taken by the consumer.
    public var undeliveredBytes: Int {
        inbox.undeliveredBytes
    }
}

/// The queue between the loop thread (producer) and the application (consumer).
///
/// Counts undelivered message bytes; crossing the high-water mark upwards calls
/// `onPressureChange(true)` on the loop thread, and draining to the low-water mark calls
/// `onPressureChange(false)` from the consumer (the session then hops to the loop).
final class SessionInbox: @unchecked Sendable {
    private let lock = PThreadLock()
    private let highWater: Int
    private let lowWater: Int
    private var queue = Deque<SessionEvent>()  // guarded by lock
    private var bytes = 0
    private var isPaused = false
    private var isFinished = false
    private var waiter: CheckedContinuation<SessionEvent?, Never>?
    /// Set once before the session starts.
    var onPressureChange: @Sendable (Bool) -> Void = { _ in }

    init(highWater: Int, lowWater: Int) {
        self.highWater = highWater
        self.lowWater = lowWater
    }

    var undeliveredBytes: Int {
        lock.withLock { bytes }
    }

    /// Delivers an event (loop thread).
    ///
    /// The waiting reader is resumed after the lock is released: resuming takes the
    /// reader task's status lock, and cancelling that task holds its status lock while
    /// `next()`'s cancellation handler takes ours — resuming under our lock deadlocks
    /// against a concurrent cancel (seen as a hung `Node.shutDown()`).
    func push(_ event: SessionEvent) {
        let (pause, reader) = lock.withLock { () -> (Bool, CheckedContinuation<SessionEvent?, Never>?) in
            guard !isFinished else { return (false, nil) }
            if let waiter {
                self.waiter = nil
                return (false, waiter)
            }
            queue.append(event)
            bytes += Self.size(of: event)
            guard !isPaused, bytes > highWater else { return (false, nil) }
            isPaused = true
            return (true, nil)
        }
        reader?.resume(returning: event)
        if pause { onPressureChange(true) }
    }

    /// Delivers `.closed` and ends the sequence after it (loop thread).
    ///
    /// Both in one critical section. Pushing `.closed` and only then marking the inbox
    /// finished let a reader that got `.closed` call `next()` in between, find the inbox
    /// empty and not yet finished, and wait for ever; the devchain client's reader hung so
    /// after a daemon was killed, and its in-flight request with it (`SessionEventsTests`).
    func finish(_ reason: SessionCloseReason) {
        let reader = lock.withLock { () -> CheckedContinuation<SessionEvent?, Never>? in
            guard !isFinished else { return nil }
            isFinished = true
            if let waiter {
                self.waiter = nil
                return waiter
            }
            queue.append(.closed(reason))
            return nil
        }
        reader?.resume(returning: .closed(reason))
    }

    /// The next event. One already buffered is returned without suspending (no
    /// continuation, no trip through the executor); only an empty inbox waits.
    func next() async -> SessionEvent? {
        let (buffered, resume) = lock.withLock { takeBuffered() }
        if resume { onPressureChange(false) }
        if let buffered { return buffered }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<SessionEvent?, Never>) in
                let (event, resume) = lock.withLock { () -> (SessionEvent??, Bool) in
                    let (buffered, resume) = takeBuffered()
                    if let buffered { return (.some(buffered), resume) }
                    if isFinished || Task.isCancelled { return (.some(nil), false) }
                    waiter = continuation
                    return (nil, false)
                }
                if resume { onPressureChange(false) }
                if let event { continuation.resume(returning: event) }
            }
        } onCancel: {
            let waiting = lock.withLock { () -> CheckedContinuation<SessionEvent?, Never>? in
                defer { waiter = nil }
                return waiter
            }
            waiting?.resume(returning: nil)
        }
    }

    /// Removes and returns the buffered messages in order, leaving other events (loop
    /// thread). Reading resumes if it was paused: what is left holds no message bytes.
    func takeMessages() -> [[UInt8]] {
        let (messages, resume) = lock.withLock { () -> ([[UInt8]], Bool) in
            var messages: [[UInt8]] = []
            var rest = Deque<SessionEvent>()
            for event in queue {
                if case let .message(bytes) = event { messages.append(bytes) } else { rest.append(event) }
            }
            queue = rest
            bytes = 0
            let resume = isPaused
            isPaused = false
            return (messages, resume)
        }
        if resume { onPressureChange(false) }
        return messages
    }

    /// The oldest buffered event, if any, and whether taking it drained the inbox to the
    /// low-water mark while reading was paused (call with the lock held).
    private func takeBuffered() -> (SessionEvent?, Bool) {
        guard let event = queue.popFirst() else { return (nil, false) }
        bytes -= Self.size(of: event)
        let resume = isPaused && bytes <= lowWater
        if resume { isPaused = false }
        return (event, resume)
    }

    private static func size(of event: SessionEvent) -> Int {
        if case let .message(bytes) = event { return bytes.count }
        return 0
    }
}
