import Logging
import Metrics
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement

/// Following the chain: its events and its clock, each turned into a reconcile of the
/// channel it concerns.
extension Watcher {
    func follow() async {
        while !stopped, !Task.isCancelled {
            do {
                for try await event in adapter.events(after: lastSequence) {
                    await handle(event)
                    if stopped { return }
                }
                return  // the adapter ended the stream: it is shutting down
            } catch {
                logger.warning("chain event stream failed; resubscribing", metadata: ["error": "\(error)", "after": "\(lastSequence)"])
                do { try await time.sleep(for: policy.retryDelay) } catch { return }
            }
        }
    }

    func handle(_ event: ChainEvent) async {
        lastSequence = max(lastSequence, event.sequence)
        let id = event.channel
        guard let record = journal.channels[id], !record.isClosed else { return }
        switch event.kind {
        case .funded:
            if depositsSeen.removeValue(forKey: id) == record.funding {
                // The deposits that made the chain call it funded are the ones we agreed, so
                // its opening is ours too (and nothing can be registered before funding).
                markFunded(id)
                emit(.funded(id))
            } else {
                // We did not see every deposit (some came before the channel was in our
                // journal), or they differ: judge the chain's snapshot, on a task of its own
                // since it reads the chain and this loop serves every channel.
                Task { await self.confirmFunding(id, record) }
            }
        case let .registered(version, deadline, by):
            // Our registration answering an earlier one is a refutation; the journal
            // entries all come from chain events, so a replay rebuilds the same history.
            // What we report about our own registrations also comes from here, not from the
            // call's answer: the chain event is the proof it happened, even when the answer
            // was lost or the call was retried.
            let ours = by == record.params.index(of: identity)
            let earlier = record.dispute?.registeredVersion
            let entry: DisputeEvent = ours && earlier != nil
                ? .refuted(version: version) : .registered(version: version, deadline: deadline.seconds)
            if await journalDispute(entry, id) {
                emit(.registered(id, version: version, deadline: deadline, by: by))
                if ours, let earlier {
                    emit(.refuted(id, stale: earlier, with: version))
                } else if ours, let reason = exitRequested[id] {
                    emit(.exitStarted(id, version: version, reason: reason))
                }
            }
        case let .progressed(version, deadline, mover):
            if await journalDispute(.progressed(version: version), id) {
                emit(.progressed(id, version: version, deadline: deadline, mover: mover))
            }
        case let .concluded(version, allocation):
            if await journalDispute(.concluded(version: version), id) {
                emit(.concluded(id, version: version, allocation: allocation))
            }
        case let .withdrawn(participant, amount):
            if participant == record.params.index(of: identity),
                await journalDispute(.withdrawn(amount: amount), id)
            {
                emit(.withdrawn(id, amount: amount))
            }
        case let .deposited(participant, _, total):
            if firstDepositAt[id] == nil, !funded.contains(id) { firstDepositAt[id] = event.time }
            var seen = depositsSeen[id] ?? Allocation(0, 0)
            seen[participant] = total
            depositsSeen[id] = seen
        case .reclaimed:
            depositsSeen[id] = nil  // the chain takes no more deposits: it will never be funded
        }
        // On a task of its own: the events of every channel go through this one loop, and
        // one channel's slow chain calls must not hold up another channel's refutation.
        Task { await self.reconcile(id) }
    }

    /// Reads chain time while windows we wait on are open, and looks again once one closes.
    func watchClock() async {
        while !stopped, !Task.isCancelled {
            do { try await time.sleep(for: policy.clockPollInterval) } catch { return }
            if !fundingDeadlines.isEmpty {
                let now = time.now
                // Whole chain seconds, rounded up, plus one for the clock's granularity: the
                // chain deadline never comes before the timeout has really passed.
                let parts = policy.fundingTimeout.components
                let timeout = UInt64(max(parts.seconds, 0)) + (parts.attoseconds > 0 ? 1 : 0) + 1
                let chainNow = fundingDeadlines.keys.contains { firstDepositAt[$0] != nil } ? try? await adapter.now() : nil
                for (id, deadline) in fundingDeadlines {
                    // No addition: a chain reporting absurd times must not trap us.
                    let onChain = chainNow.map { chainNow in
                        firstDepositAt[id].map { chainNow.seconds >= $0.seconds && chainNow.seconds - $0.seconds >= timeout } ?? false
                    } ?? false
                    guard now >= deadline || onChain else { continue }
                    fundingDeadlines[id] = nil
                    Task { await self.backgroundFundingTimedOut(id) }
                }
            }
            guard !deadlines.isEmpty, let now = try? await adapter.now() else { continue }
            for (id, deadline) in deadlines where now >= deadline {
                deadlines[id] = nil
                await reconcile(id)
            }
        }
    }
}
