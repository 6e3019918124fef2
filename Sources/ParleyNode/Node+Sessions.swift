import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// Peer sessions: dialling, addresses the peers announce, and routing channel messages
/// to their channel tasks.
extension Node {
    /// The current session with `peer`, dialling `address` if there is none.
    func session(
        with peer: PublicKey, at address: SocketAddress, within timeout: Duration
    ) async -> (any MessageLink)? {
        if let session = peers[peer]?.session { return session }
        startLink(to: peer, at: address)
        let clock = self.clock
        let timer = Task {
            do { try await clock.sleep(for: timeout) } catch { return }
            self.expireSessionWaiters(for: peer)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { sessionWaiters[peer, default: []].append($0) }
    }

    func expireSessionWaiters(for peer: PublicKey) {
        sessionWaiters.removeValue(forKey: peer)?.forEach { $0.resume(returning: nil) }
    }

    /// After a failed open: stop dialling a peer we have no channel with, and forget its address.
    func forgetIfUnused(_ peer: PublicKey) async {
        guard !hasChannel(with: peer) else { return }
        if let link = peers[peer]?.link {
            peers[peer]?.link = nil
            await link.stop()
        }
        if addresses.removeValue(forKey: peer) != nil {
            saveAddresses()
        }
    }

    func startLink(to peer: PublicKey, at address: SocketAddress) {
        guard !stopped, !switches.offline.load(ordering: .relaxed), peers[peer]?.link == nil else { return }
        let notices = self.notices
        let logger = self.logger
        let link = network.keepLink(to: peer, at: address, retry: policy.redial) { event in
            switch event {
            case let .connected(session): notices.yield(.up(session, dialed: address))
            case let .attemptFailed(why, retryIn):
                logger.debug("dial failed; retrying", metadata: ["peer": "\(peer.shortID)", "address": "\(address)", "error": "\(why)", "retryIn": "\(retryIn)"])
                notices.yield(.dialFailed(peer, "\(why)"))
            case .disconnected: break  // the session's own close event reports it
            }
        }
        peers[peer, default: PeerState()].link = link
        link.start()
    }

    func handle(_ notice: SessionNotice) async {
        switch notice {
        case let .up(session, dialed): await sessionUp(session, dialed: dialed)
        case let .down(session, reason): sessionDown(session, reason: reason)
        case let .dialFailed(peer, why): dialFailed(peer, why)
        case let .announced(session, port): announced(session, port: port)
        }
    }

    /// A peer's announcement of its listening port. Kept only when we know no address for
    /// that peer yet: a dialled address that worked is never replaced by a claim. The host
    /// is the one the session came from, never one the peer names, so an announcement can
    /// only point us back at the peer's own machine; and any dial to it still has to
    /// meet the peer's key in the handshake.
    func announced(_ session: any MessageLink, port: UInt16) {
        let peer = session.peer
        guard port != 0, addresses[peer] == nil, let came = try? SocketAddress(session.remoteDescription) else { return }
        // Written only for peers we have a channel with: anyone can connect with a fresh
        // key and announce, and the book must not grow with strangers. A stranger's
        // announcement waits in memory (bounded) for the channel it may propose next.
        guard hasChannel(with: peer) else {
            if announcedAddresses.count >= Self.maxAnnouncedAddresses, let any = announcedAddresses.keys.first {
                announcedAddresses[any] = nil
            }
            announcedAddresses[peer] = came.with(port: port)
            return
        }
        keepAnnounced(peer, came.with(port: port))
    }

    /// Whether any channel (open or closed) of ours is with `peer`.
    func hasChannel(with peer: PublicKey) -> Bool {
        registry.runners.withLock { $0.values.contains { $0.peer == peer } }
    }

    /// Writes `addresses` to the peer book; a failure is only logged (the book is a
    /// convenience, not part of any channel's safety).
    func saveAddresses() {
        do { try book.save(addresses) } catch { logger.warning("cannot save the peer book", metadata: ["error": "\(error)"]) }
    }

    /// At most this many announcements from peers without a channel are held.
    static let maxAnnouncedAddresses = 1024

    func keepAnnounced(_ peer: PublicKey, _ address: SocketAddress) {
        guard addresses[peer] == nil else { return }
        addresses[peer] = address
        saveAddresses()
        logger.info("peer announced where it listens", metadata: ["peer": "\(peer.shortID)", "address": "\(address)"])
    }

    /// An `open` waiting for a first session with a peer we have no channel with fails at
    /// the first failed dial (a refused connection answers in milliseconds; the user should
    /// not wait out the open's whole timeout). Peers with channels are redialled as before.
    func dialFailed(_ peer: PublicKey, _ why: String) {
        guard sessionWaiters[peer]?.isEmpty == false,
            !hasChannel(with: peer)
        else { return }
        dialFailures[peer] = why
        expireSessionWaiters(for: peer)
    }

    /// Newest session wins. An inbound session from a peer we also dial pauses our link
    /// (otherwise both sides would keep replacing each other's session); the link comes
    /// back when that inbound session ends.
    func sessionUp(_ session: any MessageLink, dialed: SocketAddress?) async {
        guard !stopped else { return session.close(reason: "node shut down") }
        let peer = session.peer
        if let dialed, addresses[peer] != dialed {
            // A handshake on this address succeeded: now it is worth keeping.
            addresses[peer] = dialed
            saveAddresses()
        }
        if dialed == nil, let link = peers[peer]?.link {
            peers[peer]?.link = nil
            await link.stop()
        }
        let old = peers[peer]?.session
        peers[peer, default: PeerState()].session = session
        if old == nil { metrics.peerSessions.increment() }
        let id = ObjectIdentifier(session)
        for runner in registry.runners.withLock({ $0.values.filter { $0.peer == peer } }) { runner.post(.attach(session)) }
        sink.yield(.peerConnected(peer))
        if let port = listeningAddress?.port {
            // Tell the peer where we listen, so it can dial us back after a restart even if
            // it only ever accepted (`PeerAnnouncement`). Best effort: a lost one is resent
            // with the next session.
            let bytes = PeerAnnouncement(port: port).wireBytes
            Task { try? await session.send(bytes) }
        }
        logger.info(
            "session up",
            metadata: ["peer": "\(peer.shortID)", "how": "\(dialed == nil ? "accepted" : "dialled")", "remote": "\(session.remoteDescription)"])
        sessionWaiters.removeValue(forKey: peer)?.forEach { $0.resume(returning: session) }
        if let old, old !== session { old.close(reason: "replaced by a newer session") }
        // Messages go from the transport straight to their channel's mailbox (no hop
        // through a reader task). Not kept in `tasks`: the task ends by itself when its
        // session closes (shutDown closes them all).
        let notices = self.notices
        Task {
            let reason = await session.run { [weak self] bytes in self?.route(bytes, from: session, id: id) }
            notices.yield(.down(session, reason))
        }
    }

    func sessionDown(_ session: any MessageLink, reason: SessionCloseReason) {
        let peer = session.peer
        guard let current = peers[peer]?.session, current === session else { return }
        peers[peer]?.session = nil
        metrics.peerSessions.decrement()
        let id = ObjectIdentifier(session)
        for runner in registry.runners.withLock({ $0.values.filter { $0.peer == peer } }) { runner.post(.detach(id)) }
        sink.yield(.peerDisconnected(peer, reason: reason.description))
        logger.info("session ended", metadata: ["peer": "\(peer.shortID)", "reason": "\(reason)"])
        if !stopped, peers[peer]?.link == nil, let address = addresses[peer],
            registry.runners.withLock({ $0.values.contains { $0.peer == peer && !$0.status.isClosed } })
        {
            startLink(to: peer, at: address)
        }
    }

    /// Decodes one message and posts it to its channel's runner. Runs on the loop thread:
    /// it never waits (channel proposals go to the node's open queue).
    nonisolated func route(_ bytes: [UInt8], from session: any MessageLink, id: ObjectIdentifier) {
        guard !switches.silent.load(ordering: .relaxed) else { return }
        let message: ChannelMessage
        if PeerAnnouncement.isAnnouncement(bytes) {
            if let announcement = PeerAnnouncement(wireBytes: bytes) {
                let notices = self.notices
                notices.yield(.announced(session, announcement.port))
            }
            return
        }
        do { message = try ChannelMessage(wireBytes: bytes) } catch {
            logger.notice("undecodable message", metadata: ["peer": "\(session.peer.shortID)", "error": "\(error)"])
            sink.yield(.error(nil, "undecodable message from peer \(session.peer.shortID): \(error)"))
            return
        }
        if let runner = registry.runners.withLock({ $0[message.channelID] }) {
            guard runner.peer == session.peer else {
                sink.yield(.error(message.channelID, "message for this channel from \(session.peer.shortID), who is not in it"))
                return
            }
            runner.post(.received(message, via: id))
        } else if case let .openProposal(proposal) = message {
            // One at a time for the whole node, in arrival order: a proposal repeated on a
            // reconnect must find the channel the first one created.
            incomingOpens.yield((proposal, session))
        } else if journal.channels[message.channelID]?.isClosed == true {
            // A peer that has not seen the end of a channel we closed (it reestablishes
            // after a restart): nothing to do, and nothing wrong.
            logger.debug("message for a closed channel", metadata: ["channel": "\(message.channelID.shortID)", "peer": "\(session.peer.shortID)"])
        } else {
            logger.notice("message for an unknown channel", metadata: ["channel": "\(message.channelID.shortID)", "peer": "\(session.peer.shortID)"])
            sink.yield(.error(nil, "ignored a \(message.kind) for unknown channel \(message.channelID.shortID) from \(session.peer.shortID)"))
        }
    }
}
