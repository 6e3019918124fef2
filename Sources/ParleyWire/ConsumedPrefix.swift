extension Array {
    /// Forgets the first `head` elements, which the caller has already consumed, once they
    /// are the whole array, or more than `minimum` of them and more than half of it; `head`
    /// is then 0. Consuming from the front with a head index and compacting like this keeps
    /// both ends amortised O(1): the frame decoder's bytes, a session's inbox and outbox.
    ///
    /// An array emptied this way keeps its storage unless it holds more than
    /// `keepingCapacityUpTo` elements (a burst's buffer is not kept for ever). Inlinable so
    /// the session's per-message paths in ParleyTransport get it specialised, not a generic
    /// call across modules.
    @inlinable package mutating func compactConsumed(head: inout Int, minimum: Int, keepingCapacityUpTo limit: Int = .max) {
        if head == count {
            removeAll(keepingCapacity: count <= limit)
            head = 0
        } else if head > minimum && head * 2 > count {
            removeFirst(head)
            head = 0
        }
    }
}
