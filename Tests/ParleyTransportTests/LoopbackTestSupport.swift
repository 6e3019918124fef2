import DequeModule
import ParleyLocks
import ParleyTestSupport
import Testing

@testable import ParleyTransport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about this machine's loopback interface, and raw sockets the
/// transport tests need as fixtures. Only loopback addresses are ever used.
enum Loopback {
    /// Whether `[::1]` can be bound here (containers often lack IPv6).
    static let hasIPv6: Bool = {
        let socket = rawListener(family: .ipv6, backlog: 1)
        if let socket { close(socket.descriptor) }
        return socket != nil
    }()

    /// The soft limit on open file descriptors.
    static var openFileLimit: UInt64 {
        var limit = rlimit()
        #if canImport(Glibc)
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        #else
        guard getrlimit(RLIMIT_NOFILE, &limit) == 0 else { return 0 }
        #endif
        return UInt64(limit.rlim_cur)
    }

    /// A loopback address nothing listens on: a port the OS handed out and
    /// that was released again at once.
    /// A loopback address that refuses connections for as long as the returned
    /// descriptor stays open: the port is bound but not listening, so no other
    /// test can take it meanwhile (a closed ephemeral port can be reused at once).
    /// Close the descriptor when done.
    static func refusingAddress() -> (descriptor: Int32, address: SocketAddress)? {
        guard let socket = rawListener(family: .ipv4, backlog: -1) else { return nil }
        return socket
    }

    static func closedAddress(family: SocketAddress.Family = .ipv4) -> SocketAddress? {
        guard let socket = rawListener(family: family, backlog: 1) else { return nil }
        close(socket.descriptor)
        return socket.address
    }

    /// A listening POSIX socket on an OS-chosen loopback port that nobody
    /// accepts from: with backlog 0 its accept queue holds one connection
    /// and the kernel drops further SYNs, so later connects hang.
    static func rawListener(family: SocketAddress.Family, backlog: Int32) -> (descriptor: Int32, address: SocketAddress)? {
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        #if canImport(Glibc)
        let descriptor = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(domain, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { return nil }
        let address = family == .ipv4 ? SocketAddress.loopbackIPv4(port: 0) : SocketAddress.loopbackIPv6(port: 0)
        let bound = address.withSockAddr { sockaddr in
            bind(descriptor, sockaddr, socklen_t(family == .ipv4 ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size))
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        // A negative backlog means: bind only, do not listen.
        guard bound == 0, named == 0, backlog < 0 || listen(descriptor, backlog) == 0,
              let actual = SocketAddress(storage: &storage) else {
            close(descriptor)
            return nil
        }
        return (descriptor, actual)
    }

    /// Whether this process has a thread named `name` (as Linux stores it: 15 bytes at most).
    static func hasThread(named name: String) -> Bool {
        let stored = String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self)
        return threadNames().contains(stored)
    }

    /// Whether the thread named `name` is gone from /proc within a moment. `pthread_join`
    /// returns once the kernel clears the thread's id, which happens a little before it removes
    /// `/proc/self/task/<tid>`; checking once right after `EventLoop.shutdown()` failed a CI run
    /// ("uv-shut-20" still listed). What shutdown itself guarantees at once (close status, close
    /// callbacks run) the tests check without waiting.
    static func threadEnds(named name: String) async -> Bool {
        await eventually(within: .seconds(2)) { !hasThread(named: name) }
    }

    /// Names of this process's threads, from /proc.
    static func threadNames() -> [String] {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let task = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard task != ".", task != ".." else { continue }
            let file = open("/proc/self/task/\(task)/comm", O_RDONLY)
            guard file >= 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = read(file, &buffer, buffer.count)
            close(file)
            if count > 0 {
                names.append(String(decoding: buffer[..<count], as: UTF8.self).trimmingSuffixNewline())
            }
        }
        return names
    }
}

extension String {
    fileprivate func trimmingSuffixNewline() -> String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}

/// A test ran past its deadline.
struct TestDeadlineExceeded: Error, CustomStringConvertible {
    let deadline: Duration
    var description: String { "timed out after \(deadline)" }
}

/// Runs `operation`, failing with `TestDeadlineExceeded` if it takes longer
/// than `deadline` (the operation must honour cancellation).
func withDeadline<T: Sendable>(
    _ deadline: Duration, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: deadline)
            throw TestDeadlineExceeded(deadline: deadline)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw TestDeadlineExceeded(deadline: deadline) }
        return first
    }
}

/// Runs `body` with a fresh loop, then shuts the loop down and checks that
/// libuv closed it cleanly, whether or not `body` threw.
@discardableResult
func withEventLoop<T>(_ body: (EventLoop) async throws -> T) async throws -> T {
    let loop = try EventLoop(name: "uv-test")
    let result: Result<T, Error>
    do {
        result = .success(try await body(loop))
    } catch {
        result = .failure(error)
    }
    loop.shutdown()
    #expect(loop.closeStatus == 0, "uv_loop_close reported busy handles")
    return try result.get()
}

/// Collects what a connection reads, for tests to await.
final class ByteInbox: Sendable {
    struct Closed: Error, Equatable {
        let reason: TCPCloseReason
    }

    private struct Waiter {
        let id: Int
        let count: Int
        let continuation: CheckedContinuation<[UInt8], Error>
    }

    private struct State {
        var bytes = Deque<UInt8>()
        var closeReason: TCPCloseReason?
        var waiters = Deque<Waiter>()
        var nextID = 0
        var closeWaiters: [CheckedContinuation<TCPCloseReason, Never>] = []
    }

    private let state = Locked(State())

    /// Installs this inbox as `connection`'s read and close handler.
    func attach(to connection: TCPConnection) {
        connection.setHandlers(onRead: { self.append($0) }, onClose: { self.closed($0) })
    }

    var closeReason: TCPCloseReason? {
        state.withLock { $0.closeReason }
    }

    /// Removes and returns the next `count` bytes, waiting for them.
    /// - Throws: `Closed` if the connection closes first.
    func read(exactly count: Int) async throws -> [UInt8] {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                state.withLock { state in
                    if state.bytes.count >= count {
                        continuation.resume(returning: ByteInbox.take(count, from: &state))
                    } else if let reason = state.closeReason {
                        continuation.resume(throwing: Closed(reason: reason))
                    } else if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                    }
                }
            }
        } onCancel: {
            state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return }
                state.waiters.remove(at: index).continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Waits for the connection's close reason.
    func waitForClose() async -> TCPCloseReason {
        await withCheckedContinuation { continuation in
            state.withLock { state in
                if let reason = state.closeReason {
                    continuation.resume(returning: reason)
                } else {
                    state.closeWaiters.append(continuation)
                }
            }
        }
    }

    private func append(_ bytes: [UInt8]) {
        state.withLock { state in
            state.bytes.append(contentsOf: bytes)
            while let first = state.waiters.first, state.bytes.count >= first.count {
                state.waiters.removeFirst()
                first.continuation.resume(returning: ByteInbox.take(first.count, from: &state))
            }
        }
    }

    private func closed(_ reason: TCPCloseReason) {
        state.withLock { state in
            state.closeReason = reason
            for waiter in state.waiters { waiter.continuation.resume(throwing: Closed(reason: reason)) }
            state.waiters = []
            for waiter in state.closeWaiters { waiter.resume(returning: reason) }
            state.closeWaiters = []
        }
    }

    private static func take(_ count: Int, from state: inout State) -> [UInt8] {
        let taken = Array(state.bytes.prefix(count))
        state.bytes.removeFirst(count)
        return taken
    }
}

/// A value behind a pthread mutex (ThreadSanitizer models these exactly,
/// unlike `Synchronization.Mutex`'s futex).
final class Locked<Value>: @unchecked Sendable {
    private let lock = PThreadLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&value) }
    }
}

/// A thread-safe list of values, for collecting results in tests.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Locked<[Value]>([])

    func record(_ value: Value) {
        values.withLock { $0.append(value) }
    }

    var all: [Value] {
        values.withLock { $0 }
    }

    func removeAll() {
        values.withLock { $0.removeAll() }
    }
}

/// Polls `condition` every 5 ms until it holds or `deadline` passes.
/// `ParleyTestSupport.eventually` with this suite's shorter default.
func eventually(
    within deadline: Duration = .seconds(5), _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
    try await ParleyTestSupport.eventually(within: deadline, condition)
}

/// A monotonic clock that moves only when a test says so.
final class ManualClock: Sendable {
    private let instant = Locked(ContinuousClock.now)

    func now() -> ContinuousClock.Instant {
        instant.withLock { $0 }
    }

    func advance(by duration: Duration) {
        instant.withLock { $0 += duration }
    }
}

/// Blocking POSIX connections from a chosen loopback source address, for tests that need a
/// second caller address (`EventLoop.dial` always lets the OS pick the source).
extension Loopback {
    /// What a raw connection has received so far.
    enum RawReceived: Equatable {
        case nothingYet
        case bytes(Int)
        /// The peer closed or reset the connection.
        case closed
    }

    /// Whether `host` can be the source of a loopback connection here: Linux routes all of
    /// 127.0.0.0/8 to the loopback interface, other systems often only 127.0.0.1.
    static func canConnect(from host: String) -> Bool {
        guard let listener = rawListener(family: .ipv4, backlog: 1) else { return false }
        defer { close(listener.descriptor) }
        guard let descriptor = rawConnect(to: listener.address, from: host) else { return false }
        close(descriptor)
        return true
    }

    /// A TCP connection to the IPv4 `address` from `sourceHost` (the OS picks the port), or nil
    /// when that source cannot be bound or the connect fails. On loopback the connect returns
    /// as soon as the listener's kernel queues it. Close the descriptor when done.
    static func rawConnect(to address: SocketAddress, from sourceHost: String) -> Int32? {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { return nil }
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard let source = try? SocketAddress(host: sourceHost, port: 0),
              source.withSockAddr({ bind(descriptor, $0, length) }) == 0,
              address.withSockAddr({ connect(descriptor, $0, length) }) == 0
        else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Writes all of `bytes`; false if the connection failed first (no SIGPIPE: every
    /// process that runs an `EventLoop` ignores it).
    static func rawSend(_ bytes: [UInt8], on descriptor: Int32) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Reads whatever has arrived, without waiting.
    static func rawReceive(on descriptor: Int32) -> RawReceived {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if count > 0 { return .bytes(count) }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return .nothingYet }
        return .closed
    }
}
