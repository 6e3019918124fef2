import Logging
import Metrics
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement

/// Acting: the next step `WatcherStep.decide` picks for a channel, performed on chain,
/// with retries when the chain is unreachable.
extension Watcher {
    /// Takes steps for `id` until there is nothing to do now. One reconciliation per channel
    /// runs at a time; a wake-up during it makes it look once more.
    func reconcile(_ id: ChannelID) async {
        guard !stopped else { return }
        guard !reconciling.contains(id) else {
            dirty.insert(id)
            return
        }
        reconciling.insert(id)
        defer { reconciling.remove(id) }
        var rounds = 0
        var again = true
        while again, rounds < Self.maxRoundsPerWakeUp, !stopped {
            rounds += 1
            dirty.remove(id)
            guard let known = journal.channels[id], let me = known.params.index(of: identity) else { return }
            let step: WatcherStep
            do {
                let chain = try await adapter.channel(id)
                let now = try await adapter.now()
                // Read the journal after the chain: a state committed while we waited for the
                // chain must not be passed over for an older one.
                let record = journal.channels[id] ?? known
                step = WatcherStep.decide(
                    chain: chain, record: record, me: me, now: now, exitRequested: exitRequested[id] != nil,
                    refutes: !notRefuting.contains(id), depositInFlight: depositing.contains(id))
            } catch {
                retryLater(id, after: "\(error)")
                return
            }
            again = await perform(step, id: id, me: me) || dirty.contains(id)
        }
        // The cap was hit while things still moved: look again later rather than drop the wake-up.
        if again, !stopped { retryLater(id, after: "the channel was still changing after \(rounds) steps") }
    }

    /// Performs one step; true when the facts changed and the channel should be looked at again.
    func perform(_ step: WatcherStep, id: ChannelID, me: ParticipantIndex) async -> Bool {
        switch step {
        case .idle:
            return false
        case let .waitUntil(deadline):
            deadlines[id] = deadline
            return false
        case let .register(state, reason):
            do {
                try await adapter.register(state)
                switch reason {
                case .refute: refutationsSubmitted.increment()
                case .exit: disputesStarted.increment()
                case .cooperativeClose: break
                }
            } catch {
                // Someone moved first (a higher registration, the window closed, …): look again.
                logger.info(
                    "registering refused", metadata: ["channel": "\(id.shortID)", "version": "\(state.version)", "error": "\(error)"])
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            // `.refuted` and `.exitStarted` are reported when the chain's event arrives.
            return true
        case .conclude:
            do {
                try await adapter.conclude(id)
            } catch {
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            return true
        case .withdraw:
            do {
                try await adapter.withdraw(id, participant: me)
            } catch {
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            // The chain's `withdrawn` event journals it and closes the channel.
            return false
        case .reclaim:
            do {
                _ = try await reclaimUnfunded(id)
                return true
            } catch let .chain(error) where isTransport(error) {
                return retryLater(id, after: "\(error)")
            } catch {
                emit(.failed(id, "reclaiming the deposit of an unfunded channel: \(error)"))
                return false
            }
        case .markClosed:
            do {
                try await journal.append([JournalEntry(channelID: id, body: .closed)])
            } catch {
                return retryLater(id, after: "journal: \(error)")
            }
            exitRequested[id] = nil
            deadlines[id] = nil
            silenceTimers.removeValue(forKey: id)?.cancel()
            emit(.closed(id))
            for waiter in closeWaiters.removeValue(forKey: id) ?? [] { waiter.resume(returning: .success(())) }
            return false
        }
    }

    /// Decides to leave through the chain: journals the decision first (a restart resumes
    /// it, issue 15 item 5), then acts. A journal that fails does not stop the exit itself:
    /// it only registers states that are already durable.
    func requestExit(_ id: ChannelID, reason: ExitReason) {
        guard !stopped, exitRequested[id] == nil else { return }
        exitRequested[id] = reason
        Task {
            if let record = self.journal.channels[id], record.exit == nil, !record.isClosed {
                do { try await self.journal.append([JournalEntry(channelID: id, body: .exitDecided(reason))]) } catch {
                    self.emit(.failed(id, "journaling the exit decision: \(error)"))
                }
            }
            await self.reconcile(id)
        }
    }

    func disconnectGraceExpired(_ id: ChannelID) {
        guard silenceTimers.removeValue(forKey: id) != nil else { return }
        emit(.peerSilent(id))
        requestExit(id, reason: .peerDisconnected)
    }

    /// Reports a failure and looks at the channel again after `retryDelay`. Returns false
    /// (nothing changed yet).
    @discardableResult
    func retryLater(_ id: ChannelID, after failure: String) -> Bool {
        emit(.failed(id, failure))
        logger.warning("retrying", metadata: ["channel": "\(id.shortID)", "error": "\(failure)"])
        let delay = policy.retryDelay
        Task {
            do { try await time.sleep(for: delay) } catch { return }
            await self.reconcile(id)
        }
        return false
    }

    func isTransport(_ error: SettlementError) -> Bool {
        if case .transport = error { return true }
        return false
    }

    /// Journals `event` unless the journal already holds it or something later (replaying
    /// the chain's history after a restart must not write the same dispute twice).
    /// True when it was new.
    func journalDispute(_ event: DisputeEvent, _ id: ChannelID) async -> Bool {
        guard let record = journal.channels[id], !record.isClosed else { return false }
        if let last = record.dispute, !event.isAfter(last) { return false }
        do {
            try await journal.append([JournalEntry(channelID: id, body: .dispute(event))])
            return true
        } catch {
            emit(.failed(id, "journal: \(error)"))
            return false
        }
    }

    func emit(_ event: WatcherEvent) {
        sink.yield(event)
    }
}
