import Dispatch
import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyTransport

/// `Session.send`'s outbox: the fast path below the high-water mark, coalesced writes,
/// order, close and backpressure.
@Suite struct SessionSendTests {
    @Test func sendsFromManyTasksArriveCompleteAndInOrderPerSender() async throws {
        try await withEventLoop { loop in
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop)
            let senders = 8
            let perSender = 500
            let receiving = Task { try await receiveMessages(senders * perSender, from: accepted) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<senders {
                    group.addTask {
                        for index in 0..<perSender {
                            // Varying sizes so frames straddle the coalesced writes' boundaries.
                            let filler = [UInt8](repeating: UInt8(sender), count: (index * 37) % 700)
                            try await session.send([UInt8(sender), UInt8(index >> 8), UInt8(index & 0xff)] + filler)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let received = try await receiving.value
            var next = [Int](repeating: 0, count: senders)
            for message in received {
                let sender = Int(message[0])
                let index = Int(message[1]) << 8 | Int(message[2])
                #expect(index == next[sender], "sender \(sender): got \(index), expected \(next[sender])")
                #expect(message.count == 3 + (index * 37) % 700)
                next[sender] = index + 1
            }
            #expect(next == [Int](repeating: perSender, count: senders))
            session.close()
        }
    }

    @Test func sendsQueuedWhileTheLoopIsBusyLeaveInOneWrite() async throws {
        try await withEventLoop { loop in
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop)
            let connection = session.connection
            let (writesBefore, flushesBefore) = (connection.socketWrites, session.outboxFlushes)

            // Hold the loop thread, so nothing can be written while the sends are queued.
            let entered = Locked(false)
            let gate = DispatchSemaphore(value: 0)
            loop.execute {
                entered.withLock { $0 = true }
                _ = gate.wait(timeout: .now() + .seconds(20))
            }
            #expect(await eventually { entered.withLock { $0 } })
            let count = 50
            for index in 0..<count { try await session.send([UInt8(index)]) }
            // Every send returned while the loop was blocked: none needed the loop thread.
            #expect(session.outboxFlushes == flushesBefore)
            gate.signal()

            #expect(try await receiveMessages(count, from: accepted) == (0..<count).map { [UInt8($0)] })
            let writes = connection.socketWrites - writesBefore
            let flushes = session.outboxFlushes - flushesBefore
            #expect(flushes == 1, "\(count) queued sends took \(flushes) flushes")
            #expect(writes <= 2, "\(count) queued sends took \(writes) socket writes")
            session.close()
        }
    }

    /// `deliverMessages(to:)`: messages already waiting in `events` reach the handler
    /// first, then new ones, all in order and on the loop thread; `events` keeps `.closed`.
    @Test func messagesGoToTheHandlerInOrderOnceItIsSet() async throws {
        try await withEventLoop { loop in
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop)
            for index in 0..<20 { try await session.send([UInt8(index)]) }
            // Wait until all 20 sit in the inbox, undelivered.
            #expect(await eventually { accepted.events.undeliveredBytes == 20 })

            let received = Locked<[[UInt8]]>([])
            let offLoop = Locked(0)
            await accepted.deliverMessages { message in
                if !loop.isOnLoopThread { offLoop.withLock { $0 += 1 } }
                received.withLock { $0.append(message) }
            }
            #expect(accepted.events.undeliveredBytes == 0)
            for index in 20..<300 { try await session.send([UInt8(index & 0xff), UInt8(index >> 8)]) }
            #expect(await eventually { received.withLock { $0.count } == 300 })
            let messages = received.withLock { $0 }
            #expect(messages.prefix(20).map { Int($0[0]) } == Array(0..<20))
            #expect(messages.dropFirst(20).map { Int($0[0]) | Int($0[1]) << 8 } == Array(20..<300))
            #expect(offLoop.withLock { $0 } == 0, "the handler ran off the loop thread")

            session.close()
            var sawClosed = false
            for await event in accepted.events {
                if case .message = event { Issue.record("a message went to events after the handler was set") }
                if case .closed = event { sawClosed = true }
            }
            #expect(sawClosed)
        }
    }

    @Test func sendAfterCloseThrowsClosed() async throws {
        try await withEventLoop { loop in
            let server = try await ListeningPeer.start(on: loop)
            let dialer = SessionEndpoint(identity: SigningKey(), loop: loop, config: testConfig)
            let session = try await dialer.connect(to: server.address, expecting: server.key)
            let accepted = try await server.session()
            try await session.send([1])
            session.close(reason: "done here")
            #expect(await session.waitUntilClosed() == .localClose("done here"))
            await #expect(throws: SessionError.closed(.localClose("done here"))) { try await session.send([2]) }

            // The peer saw the message sent before the close, then the close.
            #expect(try await receiveMessages(1, from: accepted) == [[1]])
            #expect(await accepted.waitUntilClosed() == .peerClosed("done here"))
            await #expect(throws: SessionError.closed(.peerClosed("done here"))) { try await accepted.send([3]) }
        }
    }

    @Test func sendWaitsAboveTheHighWaterMarkWhileThePeerDoesNotRead() async throws {
        try await withEventLoop { loop in
            let config = SessionConfig(
                connectTimeout: .seconds(20), handshakeTimeout: .seconds(20),
                keepaliveInterval: .seconds(5), silenceInterval: .seconds(20),
                receiveHighWater: 64 << 10, receiveLowWater: 16 << 10,
                sendWatermarks: TCPConnection.Watermarks(high: 128 << 10, low: 32 << 10))
            let (server, session, accepted) = try await ListeningPeer.connectedPair(on: loop, config: config)
            let payload = [UInt8](repeating: 0x42, count: 32 << 10)
            let limit = 4_000  // 128 MB: far more than the kernel's socket buffers hold
            let completed = Locked(0)
            let sender = Task {
                for index in 0..<limit {
                    try await session.send([UInt8(index & 0xff)] + payload)
                    completed.withLock { $0 += 1 }
                }
            }
            // Nobody reads: the peer's inbox fills, it stops reading, the kernel buffers fill,
            // the connection's queue reaches the mark and the sender stops.
            let stalled = await eventually(within: .seconds(30)) {
                let before = completed.withLock { $0 }
                try? await Task.sleep(for: .milliseconds(300))
                return before == completed.withLock { $0 } && session.connection.bytesQueued >= config.sendWatermarks.high
            }
            #expect(stalled, "the sender never stopped (\(completed.withLock { $0 }) sends done)")
            #expect(completed.withLock { $0 } < limit)
            let frameBytes = WireLimits.frameHeaderBytes + 2 + payload.count + AEAD.tagBytes
            #expect(session.connection.peakBytesQueued < config.sendWatermarks.high + frameBytes)

            // Reading again releases it; everything arrives in order.
            let received = try await withDeadline(.seconds(60)) {
                var count = 0
                for await event in accepted.events {
                    guard case let .message(bytes) = event else { break }
                    #expect(bytes.first == UInt8(count & 0xff))
                    count += 1
                    if count == limit { break }
                }
                return count
            }
            #expect(received == limit)
            try await sender.value
            #expect(session.connection.peakBytesQueued < config.sendWatermarks.high + frameBytes)
            session.close()
        }
    }

    @Test func closingFailsSendsWaitingAboveTheHighWaterMark() async throws {
        try await withEventLoop { loop in
            let config = SessionConfig(
                connectTimeout: .seconds(20), handshakeTimeout: .seconds(20),
                keepaliveInterval: .seconds(5), silenceInterval: .seconds(20),
                receiveHighWater: 64 << 10, receiveLowWater: 16 << 10,
                sendWatermarks: TCPConnection.Watermarks(high: 64 << 10, low: 16 << 10))
            let (server, session, _) = try await ListeningPeer.connectedPair(on: loop, config: config)
            let payload = [UInt8](repeating: 7, count: 32 << 10)
            let sender = Task {
                while true { try await session.send(payload) }
            }
            #expect(await eventually(within: .seconds(30)) {
                session.connection.bytesQueued >= config.sendWatermarks.high
            })
            session.close(reason: "enough")
            await #expect(throws: SessionError.closed(.localClose("enough"))) { try await sender.value }
        }
    }
}
