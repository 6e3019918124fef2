import ParleyCrypto
import ParleySettlement

/// `events(after:)` on an EVM chain: polls `eth_getLogs` from the last processed block,
/// delivers each adjudicator event once it has the confirmation depth, and watches the
/// hash of the last block it processed to notice a reorganisation.
///
/// Sequences are `block << 20 | logIndex`: increasing along the chain, so `after:` resumes
/// exactly, but not gap-free. When the chain reorganises below the confirmation depth
/// (the hash of a processed block changes), the poller steps back to the newest block it
/// processed that is still on the chain and delivers what the new branch holds from there,
/// possibly with sequences at or below ones it already delivered: the watcher treats a
/// chain event as a hint and reads the channel before acting, so a repeated or vanished
/// event costs a read, never money. Docs/Ethereum.md, "Events and reorganisations".
struct EventPoller: Sendable {
    let chain: EthereumChain

    func stream(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<ChainEvent, any Error>.makeStream(bufferingPolicy: .unbounded)
        let task = Task { [chain] in
            do {
                try await Self.run(chain: chain, after: sequence, into: continuation)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// How many processed blocks' hashes are kept to find where a reorganisation forked.
    static let rememberedBlocks = 128

    private static func run(
        chain: EthereumChain, after sequence: UInt64, into continuation: AsyncThrowingStream<ChainEvent, any Error>.Continuation
    ) async throws {
        let options = chain.options
        var after = sequence
        // Resume inside the block of the last delivered event (its later logs may follow).
        var next = max(options.fromBlock, sequence >> EthereumChain.logIndexBits)
        var processed: [(number: UInt64, hash: Digest)] = []
        var failures = 0
        while !Task.isCancelled {
            do {
                if let fork = try await reorganisation(chain, processed) {
                    processed.removeAll { $0.number > fork }
                    chain.logReorganisation(fork: fork)
                    next = fork + 1
                    after = min(after, (fork + 1) << EthereumChain.logIndexBits)
                    if after > 0 { after -= 1 }
                }
                let head = try await chain.blockNumber()
                guard head + 1 >= options.confirmations else {
                    try await Task.sleep(for: options.pollInterval)
                    continue
                }
                let safe = head + 1 - options.confirmations
                if next > safe {
                    try await Task.sleep(for: options.pollInterval)
                    continue
                }
                let end = min(safe, next + options.logRange - 1)
                guard let endBlock = try await chain.block(number: end) else {
                    try await Task.sleep(for: options.pollInterval)
                    continue
                }
                for log in try await chain.logs(from: next, to: end) where log.sequence > after {
                    if let event = try await chain.chainEvent(log) {
                        continuation.yield(event)
                        after = log.sequence
                    }
                }
                processed.append((end, endBlock.hash))
                if processed.count > rememberedBlocks { processed.removeFirst(processed.count - rememberedBlocks) }
                next = end + 1
                failures = 0
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                // The endpoint is down or answered nonsense: keep trying, slower, and keep the
                // channels safe meanwhile (the watcher also polls channel state on its own).
                failures += 1
                chain.logPollFailure(error, attempt: failures)
                try? await Task.sleep(for: options.pollInterval * min(failures, 20))
            }
        }
    }

    /// The newest processed block still on the chain, when the last processed one is not.
    private static func reorganisation(
        _ chain: EthereumChain, _ processed: [(number: UInt64, hash: Digest)]
    ) async throws(EthereumRPCError) -> UInt64? {
        // A block the node does not have (a backend behind the others) is not a
        // reorganisation: wait for it. Only a different hash at the same height is.
        guard let last = processed.last, let current = try await chain.block(number: last.number), current.hash != last.hash
        else { return nil }
        for entry in processed.reversed().dropFirst() where try await chain.block(number: entry.number)?.hash == entry.hash {
            return entry.number
        }
        return chain.options.fromBlock > 0 ? chain.options.fromBlock - 1 : 0
    }
}
