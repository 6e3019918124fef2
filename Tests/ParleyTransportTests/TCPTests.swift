import CLibUV
import Synchronization
import Testing

@testable import ParleyTransport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Address parsing, nested under `TCPTests` so `--filter TCPTests` runs it.
extension TCPTests {
    @Suite struct SocketAddressTests {
        @Test(arguments: [
            ("127.0.0.1:9735", "127.0.0.1:9735", SocketAddress.Family.ipv4, UInt16(9735)),
            ("[::1]:9735", "[::1]:9735", .ipv6, 9735),
            ("[0:0:0:0:0:0:0:1]:80", "[::1]:80", .ipv6, 80),
            ("0.0.0.0:0", "0.0.0.0:0", .ipv4, 0),
            ("10.20.30.40:65535", "10.20.30.40:65535", .ipv4, 65535),
        ])
        func parsesNumericAddressesToCanonicalForm(text: String, canonical: String, family: SocketAddress.Family, port: UInt16) throws {
            let address = try SocketAddress(text)
            #expect(address.description == canonical)
            #expect(address.family == family)
            #expect(address.port == port)
            #expect(try SocketAddress(canonical) == address)
        }

        @Test(arguments: [
            "", "127.0.0.1", "127.0.0.1:", "[::1]", "[::1]80", "localhost:80", "::1:80", "[127.0.0.1]:80",
            "1.2.3:80", "256.0.0.1:80", "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1:-1", "127.0.0.1:8a",
            "127.0.0.1:000080", "[fe80::1%eth0]:80", ":80", "[::1:80", " 127.0.0.1:80",
        ])
        func rejectsAnythingElseWithATypedError(text: String) {
            #expect(throws: SocketAddressError.self) { try SocketAddress(text) }
        }

        @Test func errorsSayWhatIsWrong() {
            #expect(throws: SocketAddressError.missingPort("127.0.0.1")) { try SocketAddress("127.0.0.1") }
            #expect(throws: SocketAddressError.invalidPort("127.0.0.1:70000")) { try SocketAddress("127.0.0.1:70000") }
            #expect(throws: SocketAddressError.invalidHost("localhost")) { try SocketAddress("localhost:80") }
        }
    }

}

/// Echoes every byte `connection` reads back to its peer, on the loop thread.
private func echo(_ connection: TCPConnection) {
    connection.setHandlers(onRead: { bytes in connection.send(bytes) { _ in } }, onClose: { _ in })
}

/// Whether TCP_NODELAY is set on the connection's socket (loop thread only).
private func hasNoDelay(_ connection: TCPConnection) -> Bool {
    guard let descriptor = connection.fileDescriptor else { return false }
    let tcpNoDelayOption: Int32 = 1  // TCP_NODELAY in <netinet/tcp.h>
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(descriptor, Int32(IPPROTO_TCP), tcpNoDelayOption, &value, &length) == 0 else { return false }
    return value != 0
}

/// Reads a stream written as `chunkSize`-byte chunks where chunk `n` is
/// filled with `UInt8(truncatingIfNeeded: n)`, checking the first and last
/// byte of every read against its position in the stream.
private final class ChunkPatternChecker: Sendable {
    private struct State {
        var total = 0
        var mismatches = 0
    }

    private let chunkSize: Int
    private let state = Locked(State())

    init(chunkSize: Int) {
        self.chunkSize = chunkSize
    }

    var total: Int { state.withLock { $0.total } }
    var mismatches: Int { state.withLock { $0.mismatches } }

    func consume(_ bytes: [UInt8]) {
        guard let first = bytes.first, let last = bytes.last else { return }
        state.withLock { state in
            let start = state.total
            let end = start + bytes.count - 1
            if first != UInt8(truncatingIfNeeded: start / chunkSize) { state.mismatches += 1 }
            if last != UInt8(truncatingIfNeeded: end / chunkSize) { state.mismatches += 1 }
            state.total += bytes.count
        }
    }
}

/// Bytes a writer task has had accepted by `send`.
private final class SendProgress: Sendable {
    private let bytes = Atomic<Int>(0)
    var value: Int { bytes.load(ordering: .relaxed) }
    func add(_ count: Int) { bytes.wrappingAdd(count, ordering: .relaxed) }
}

@Suite struct TCPTests {
    @Test func echoOverIPv4Loopback() async throws {
        try await echoRoundTrip(listeningOn: .loopbackIPv4(port: 0))
    }

    @Test(.enabled(if: Loopback.hasIPv6, "this machine cannot bind [::1]; skipping the IPv6 echo"))
    func echoOverIPv6Loopback() async throws {
        try await echoRoundTrip(listeningOn: .loopbackIPv6(port: 0))
    }

    private func echoRoundTrip(listeningOn address: SocketAddress) async throws {
        try await withEventLoop { loop in
            let accepted = Recorder<TCPConnection>()
            let listener = try await loop.listen(on: address) { connection in
                accepted.record(connection)
                echo(connection)
            }
            #expect(listener.localAddress.family == address.family)
            #expect(listener.localAddress.port != 0)

            let client = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
            let inbox = ByteInbox()
            inbox.attach(to: client)
            let greeting = Array("hello over \(address)".utf8)
            try await client.send(greeting)
            #expect(try await withDeadline(.seconds(5)) { try await inbox.read(exactly: greeting.count) } == greeting)

            // Larger than one read buffer and than one try_write: exercises queued writes and split reads.
            let large = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            try await client.send(large)
            #expect(try await withDeadline(.seconds(5)) { try await inbox.read(exactly: large.count) } == large)

            let server = try #require(accepted.all.first)
            #expect(client.remoteAddress == listener.localAddress)
            #expect(server.remoteAddress == client.localAddress)
            #expect(try await loop.submit { hasNoDelay(client) && hasNoDelay(server) })

            client.close(reason: "done")
            #expect(try await withDeadline(.seconds(5)) { await client.waitUntilClosed() } == .localClose("done"))
            #expect(try await withDeadline(.seconds(5)) { await inbox.waitForClose() } == .localClose("done"))
            await listener.close()
            await listener.close()  // idempotent
        }
    }

    /// Refused, not timed out: the typed error tells the two apart. (No wall-clock
    /// bound here: under a loaded test run the task itself may wait for a thread.)
    @Test func connectToAClosedPortIsRefusedWithATypedError() async throws {
        let (descriptor, address) = try #require(Loopback.refusingAddress())
        defer { close(descriptor) }
        try await withEventLoop { loop in
            await #expect(throws: TCPError.connectRefused(address)) {
                try await loop.connect(to: address, timeout: .seconds(30))
            }
        }
    }

    @Test func connectTimesOutWhenTheListenerNeverAnswers() async throws {
        // A raw listener with backlog 0 that never accepts: once its accept
        // queue holds one connection the kernel drops further SYNs, so the
        // next connect hangs until our timeout fires. Loopback only.
        let listener = try #require(Loopback.rawListener(family: .ipv4, backlog: 0))
        defer { close(listener.descriptor) }
        try await withEventLoop { loop in
            let timeout = Duration.milliseconds(200)
            let clock = ContinuousClock()
            var established: [TCPConnection] = []
            var failure: TCPError?
            var elapsed = Duration.zero
            for _ in 0..<8 where failure == nil {
                let start = clock.now
                do {
                    established.append(try await loop.connect(to: listener.address, timeout: timeout))
                } catch let error as TCPError {
                    failure = error
                    elapsed = clock.now - start
                }
            }
            #expect(failure == .connectTimeout(listener.address, after: timeout))
            #expect(elapsed >= timeout, "the timeout never fires early")
            #expect(!established.isEmpty, "the first connection should fill the accept queue")
            for connection in established { connection.close(reason: "test over") }
        }
    }

    @Test func listeningOnAnAddressInUseFailsWithATypedError() async throws {
        try await withEventLoop { loop in
            let first = try await loop.listen(on: .loopbackIPv4(port: 0)) { $0.close() }
            do {
                _ = try await loop.listen(on: first.localAddress) { $0.close() }
                Issue.record("a second listener bound \(first.localAddress)")
            } catch let TCPError.listenFailed(address, code, _) {
                #expect(address == first.localAddress)
                #expect(code == Int32(UV_EADDRINUSE.rawValue))
            }
            await first.close()
            // After close the port refuses connections.
            await #expect(throws: TCPError.connectRefused(first.localAddress)) {
                try await loop.connect(to: first.localAddress, timeout: .seconds(2))
            }
        }
    }

    @Test func peerCloseIsReportedAsPeerClosedAndLaterSendsFail() async throws {
        try await withEventLoop { loop in
            let serverReasons = Recorder<TCPCloseReason>()
            let listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { connection in
                connection.setHandlers(onRead: { _ in }, onClose: { serverReasons.record($0) })
                connection.close(reason: "server done")
            }
            let client = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
            let inbox = ByteInbox()
            inbox.attach(to: client)
            #expect(try await withDeadline(.seconds(5)) { await inbox.waitForClose() } == .peerClosed)
            #expect(serverReasons.all == [.localClose("server done")])
            await #expect(throws: TCPError.connectionClosed(.peerClosed)) { try await client.send([1, 2, 3]) }
            // Handlers installed after the close still learn the reason.
            let late = ByteInbox()
            late.attach(to: client)
            #expect(try await withDeadline(.seconds(5)) { await late.waitForClose() } == .peerClosed)
            await listener.close()
        }
    }

    @Test func pausedReadingDeliversNothingUntilResumed() async throws {
        try await withEventLoop { loop in
            let accepted = Recorder<TCPConnection>()
            let received = Recorder<[UInt8]>()
            let listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { connection in
                accepted.record(connection)
                connection.setHandlers(onRead: { bytes in
                    received.record(bytes)
                    connection.pauseReading()
                }, onClose: { _ in })
            }
            let client = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
            try await client.send([1])
            #expect(await eventually { received.all.count == 1 })
            try await client.send([2])
            try await Task.sleep(for: .milliseconds(50))
            #expect(received.all == [[1]], "a paused connection must not read")
            try #require(accepted.all.first).resumeReading()
            #expect(await eventually { received.all.count == 2 })
            #expect(received.all == [[1], [2]])
            client.close()
            await listener.close()
        }
    }

    @Test func slowReaderSuspendsTheSenderAndBoundsTheQueue() async throws {
        let chunkSize = 64 * 1024
        let totalBytes = 64 * 1024 * 1024
        let watermarks = TCPConnection.Watermarks.default
        try await withEventLoop { readerLoop in
            try await withEventLoop { writerLoop in
                let accepted = Recorder<TCPConnection>()
                // The reader accepts but does not read until told to.
                let listener = try await readerLoop.listen(on: .loopbackIPv4(port: 0)) { accepted.record($0) }
                let writer = try await writerLoop.connect(to: listener.localAddress, timeout: .seconds(2))
                let progress = SendProgress()
                let writing = Task {
                    for index in 0..<(totalBytes / chunkSize) {
                        try await writer.send([UInt8](repeating: UInt8(truncatingIfNeeded: index), count: chunkSize))
                        progress.add(chunkSize)
                    }
                }

                let suspended = await eventually(within: .seconds(10)) {
                    (try? await writerLoop.submit { writer.suspendedSendCount }) == 1
                }
                #expect(suspended, "send never suspended although nobody reads")
                let stalledAt = progress.value
                try await Task.sleep(for: .milliseconds(100))
                #expect(progress.value == stalledAt, "the sender kept going while the reader read nothing")
                #expect(stalledAt < totalBytes)
                #expect(writer.bytesQueued >= watermarks.high)
                #expect(writer.peakBytesQueued < watermarks.high + chunkSize)
                print("[backpressure] sender stalled after \(stalledAt) bytes; \(writer.bytesQueued) queued in libuv, the rest in kernel buffers")

                let reader = try #require(accepted.all.first)
                let checker = ChunkPatternChecker(chunkSize: chunkSize)
                reader.setHandlers(onRead: { checker.consume($0) }, onClose: { _ in })
                // 64 MiB through loopback: deadlines that a test run loading both cores with
                // local EVMs and drills cannot trip (15 s once did). Not a speed check.
                try await withDeadline(.seconds(90)) { try await writing.value }
                #expect(await eventually(within: .seconds(30)) { checker.total == totalBytes })
                #expect(checker.mismatches == 0)
                #expect(writer.peakBytesQueued < watermarks.high + chunkSize)
                #expect(await eventually { writer.bytesQueued == 0 })
                writer.close(reason: "done")
                await listener.close()
            }
        }
    }

    @Test func closingAConnectionFailsItsSuspendedSenders() async throws {
        let chunkSize = 64 * 1024
        let watermarks = TCPConnection.Watermarks(high: 128 * 1024, low: 32 * 1024)
        try await withEventLoop { loop in
            let listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { _ in }
            let writer = try await loop.connect(to: listener.localAddress, timeout: .seconds(2), watermarks: watermarks)
            let writing = Task { () -> TCPError? in
                do {
                    while true { try await writer.send([UInt8](repeating: 0xAB, count: chunkSize)) }
                } catch {
                    return error as? TCPError
                }
            }
            #expect(await eventually(within: .seconds(10)) {
                (try? await loop.submit { writer.suspendedSendCount }) == 1
            })
            #expect(writer.peakBytesQueued < watermarks.high + chunkSize)
            writer.close(reason: "giving up")
            let failure = try await withDeadline(.seconds(5)) { await writing.value }
            #expect(failure == .connectionClosed(.localClose("giving up")))
            await listener.close()
        }
    }

    @Test(.enabled(if: Loopback.openFileLimit >= 2_500, "needs 2,500 file descriptors; raise ulimit -n to run it"))
    func thousandConcurrentConnectionsEchoOnOneLoop() async throws {
        let connectionCount = 1_000
        try await withEventLoop { loop in
            let serverSide = Recorder<TCPConnection>()
            let serverReasons = Recorder<TCPCloseReason>()
            let listener = try await loop.listen(on: .loopbackIPv4(port: 0), backlog: 1_024) { connection in
                serverSide.record(connection)
                connection.setHandlers(
                    onRead: { bytes in connection.send(bytes) { _ in } },
                    onClose: { serverReasons.record($0) })
            }
            let clients = try await withThrowingTaskGroup(of: (TCPConnection, ByteInbox).self) { group in
                for _ in 0..<connectionCount {
                    group.addTask {
                        let connection = try await loop.connect(to: listener.localAddress, timeout: .seconds(10))
                        let inbox = ByteInbox()
                        inbox.attach(to: connection)
                        return (connection, inbox)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(await eventually { serverSide.all.count == connectionCount }, "all connections open at once")

            let echoed = try await withDeadline(.seconds(10)) {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for (index, (connection, inbox)) in clients.enumerated() {
                        group.addTask {
                            let message = Array("message #\(index)".utf8)
                            try await connection.send(message)
                            return try await inbox.read(exactly: message.count) == message
                        }
                    }
                    return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
            }
            #expect(echoed == connectionCount)

            for (connection, _) in clients { connection.close(reason: "done") }
            #expect(await eventually { serverReasons.all.count == connectionCount })
            #expect(serverReasons.all.allSatisfy { $0 == .peerClosed })
            await listener.close()
        }
    }

    @Test func dialRetriesWithBackoffUntilTheListenerAppears() async throws {
        let address = try #require(Loopback.closedAddress())
        try await withEventLoop { loop in
            let policy = RetryPolicy(
                initialDelay: .milliseconds(30), multiplier: 2, maxDelay: .milliseconds(200),
                maxAttempts: 20, jitter: .none)
            let lateListener = Task {
                try await Task.sleep(for: .milliseconds(150))
                return try await loop.listen(on: address) { $0.close() }
            }
            let clock = ContinuousClock()
            let start = clock.now
            let connection = try await loop.dial(to: address, timeout: .seconds(1), retry: policy)
            #expect(clock.now - start >= .milliseconds(100))
            #expect(connection.remoteAddress == address)
            connection.close()
            try await lateListener.value.close()
        }
    }

    @Test func dialGivesUpWithATypedErrorAfterTheLastAttempt() async throws {
        let (descriptor, address) = try #require(Loopback.refusingAddress())
        defer { close(descriptor) }
        try await withEventLoop { loop in
            let policy = RetryPolicy(
                initialDelay: .milliseconds(20), multiplier: 2, maxDelay: .seconds(1), maxAttempts: 3, jitter: .none)
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: TCPError.retriesExhausted(attempts: 3, last: .connectRefused(address))) {
                try await loop.dial(to: address, timeout: .seconds(1), retry: policy)
            }
            #expect(clock.now - start >= .milliseconds(60), "waits of 20 ms and 40 ms between the attempts")
        }
    }

    @Test func shutdownClosesListenersAndConnectionsAndFailsLaterWork() async throws {
        let loop = try EventLoop(name: "uv-shut")
        let serverReasons = Recorder<TCPCloseReason>()
        let listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { connection in
            connection.setHandlers(onRead: { _ in }, onClose: { serverReasons.record($0) })
        }
        let client = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
        let inbox = ByteInbox()
        inbox.attach(to: client)
        try await client.send([1])
        try await Task.sleep(for: .milliseconds(20))

        loop.shutdown()
        let shutdownReason = TCPCloseReason.localClose(EventLoop.shutdownReason)
        #expect(loop.closeStatus == 0)
        #expect(await Loopback.threadEnds(named: loop.name))
        #expect(inbox.closeReason == shutdownReason, "onClose runs before shutdown returns")
        #expect(serverReasons.all == [shutdownReason])
        await #expect(throws: TCPError.connectionClosed(shutdownReason)) { try await client.send([2]) }
        await #expect(throws: TCPError.loopShutDown) {
            try await loop.connect(to: listener.localAddress, timeout: .seconds(1))
        }
        await #expect(throws: TCPError.loopShutDown) { try await loop.listen(on: .loopbackIPv4(port: 0)) { _ in } }
        await listener.close()
        #expect(await client.waitUntilClosed() == shutdownReason)
    }

    /// Rough cost of a small-message round trip over one loopback connection
    /// (unencrypted; the session layer adds its own framing and AEAD).
    /// PARLEY_PINGPONG_ROUNDS overrides the count (default 2,000).
    @Test func smallMessageRoundTripCost() async throws {
        let rounds = getenv("PARLEY_PINGPONG_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 2_000
        let message = [UInt8](repeating: 0x5A, count: 32)
        try await withEventLoop { loop in
            let listener = try await loop.listen(on: .loopbackIPv4(port: 0)) { echo($0) }
            let client = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
            let inbox = ByteInbox()
            inbox.attach(to: client)
            let clock = ContinuousClock()
            for _ in 0..<100 {
                try await client.send(message)
                _ = try await inbox.read(exactly: message.count)
            }
            let start = clock.now
            for _ in 0..<rounds {
                try await client.send(message)
                _ = try await inbox.read(exactly: message.count)
            }
            let asyncElapsed = clock.now - start
            client.close()

            // The same ping-pong driven from the loop thread: the libuv floor.
            let native = try await loop.connect(to: listener.localAddress, timeout: .seconds(2))
            let nativeElapsed = try await withDeadline(.seconds(30)) {
                await withCheckedContinuation { (continuation: CheckedContinuation<Duration, Never>) in
                    let remaining = Locked(rounds)
                    let nativeStart = clock.now
                    native.setHandlers(onRead: { _ in
                        let left = remaining.withLock { value -> Int in
                            value -= 1
                            return value
                        }
                        if left > 0 {
                            native.send(message) { _ in }
                        } else if left == 0 {
                            continuation.resume(returning: clock.now - nativeStart)
                        }
                    }, onClose: { _ in })
                    native.send(message) { _ in }
                }
            }
            native.close()
            await listener.close()
            print("[round trip] \(rounds) × 32 B over one loopback connection: "
                + "async API \(microseconds(asyncElapsed / rounds)) µs each (\(Int(Double(rounds) / asyncElapsed.seconds))/s); "
                + "loop-native \(microseconds(nativeElapsed / rounds)) µs each (\(Int(Double(rounds) / nativeElapsed.seconds))/s)")
        }
    }
}

/// `duration` in microseconds with one decimal, e.g. "42.8".
private func microseconds(_ duration: Duration) -> String {
    let tenths = Int((duration.seconds * 1e7).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
