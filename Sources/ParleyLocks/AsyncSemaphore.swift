import DequeModule

/// A counting semaphore for async code: `acquire` suspends (never blocks a thread) until a
/// permit is free; waiters get permits in arrival order. With one permit it is a lock that
/// may be held across `await`s, which an actor alone is not (it is reentrant).
public actor AsyncSemaphore {
    private var available: Int
    private var waiters = Deque<CheckedContinuation<Void, Never>>()

    public init(permits: Int) {
        available = permits
    }

    public func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    public func release() {
        if let next = waiters.popFirst() {
            next.resume()
        } else {
            available += 1
        }
    }
}
