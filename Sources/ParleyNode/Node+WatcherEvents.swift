import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// What the watcher reports, turned into channel posts and node events.
extension Node {
    func forward(_ event: WatcherEvent) {
        let runner = { (id: ChannelID) in self.registry.runners.withLock { $0[id] } }
        switch event {
        case let .funded(id):
            runner(id)?.post(.funded(nil))
            sink.yield(.funded(id))
        case let .registered(id, version, deadline, by):
            runner(id)?.post(.closing(.registeredOnChain(version: version)))
            sink.yield(.registered(id, version: version, deadline: deadline, by: by))
            spawn { await self.considerChainMove(id) }
        case let .refuted(id, stale, with):
            sink.yield(.refuted(id, stale: stale, with: with))
            spawn { await self.considerChainMove(id) }
        case let .progressed(id, version, deadline, mover):
            runner(id)?.post(.closing(.progressedOnChain(version: version)))
            sink.yield(.progressed(id, version: version, deadline: deadline, mover: mover))
            spawn { await self.considerChainMove(id) }
        case let .exitStarted(id, version, reason):
            runner(id)?.post(.closing(.exiting(reason)))
            sink.yield(.exitStarted(id, version: version, reason: reason))
        case let .peerSilent(id):
            sink.yield(.peerSilent(id))
        case let .concluded(id, version, allocation):
            sink.yield(.concluded(id, version: version, allocation: allocation))
        case let .withdrawn(id, amount):
            sink.yield(.withdrawn(id, amount: amount))
        case let .closed(id):
            runner(id)?.post(.closed)
            sink.yield(.closed(id))
        case let .failed(id, why):
            sink.yield(.error(id, why))
        case let .abandoned(id):
            sink.yield(.abandoned(id))
        }
    }
}
