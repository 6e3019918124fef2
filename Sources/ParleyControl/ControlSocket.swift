import Foundation
import ParleyLocks

#if canImport(Glibc)
    import Glibc
#endif

/// Why the control socket could not be served or reached.
public enum ControlSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    case pathTooLong(String)
    case inUse(String)
    case notASocket(String)
    case system(String, String)
    case unreachable(String, String)
    case timeout(String)
    case closed

    public var description: String {
        switch self {
        case let .pathTooLong(path):
            "the control socket path \(path) is too long (at most 107 bytes): choose a shorter one"
        case let .inUse(path):
            "another node already answers on the control socket \(path): stop it, or give this node another --control path"
        case let .notASocket(path): "\(path) exists and is not a socket: refusing to replace it (choose another --control path)"
        case let .system(what, why): "\(what): \(why)"
        case let .unreachable(path, why):
            "cannot reach a node on the control socket \(path): \(why) (is `parley node --control unix:\(path)` running?)"
        case let .timeout(path): "the node on \(path) did not answer in time"
        case .closed: "the node closed the control connection"
        }
    }
}

/// A Unix-domain stream socket `parley node --control unix:PATH` serves its commands on.
///
/// Access is the file system's: the socket is created mode 0600 (bound under umask 077,
/// so there is no moment it is open wider), and a connection from a process of another
/// user (SO_PEERCRED) is closed at once, root excepted. A stale socket file left by a
/// killed node is replaced; a live one is refused. Each connection is read by a thread of
/// its own; at most ``maxConnections`` at once, later ones are closed.
public final class ControlSocketServer: @unchecked Sendable {
    public static let maxConnections = 32
    public let path: String
    private let descriptor: Int32
    /// The socket file this server made (device and inode): `stop` removes only that one,
    /// never a socket another node put at the same path since.
    private let identity: (device: UInt64, inode: UInt64)
    private let connections = Locked<[ObjectIdentifier: ControlConnection]>([:])
    private let stopped = Locked(false)

    /// Binds and listens on `path`, then calls `onConnection` (on the accepting thread) for
    /// each client of this user.
    public init(path: String, onConnection: @escaping @Sendable (ControlConnection) -> Void) throws(ControlSocketError) {
        self.path = path
        var address = try Self.address(path)
        var status = stat()
        if lstat(path, &status) == 0 {
            guard (status.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path) }
            // Only a socket nobody listens on (connection refused) is stale; one that answers,
            // or does not answer in time, belongs to a live node.
            switch ControlClient.probe(path: path, within: .seconds(1)) {
            case .refused: unlink(path)
            case .answered, .unsure: throw .inUse(path)
            }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("cannot make the control socket", String(cString: strerror(errno))) }
        let previous = umask(0o077)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindError = errno
        umask(previous)
        guard bound == 0 else {
            close(fd)
            throw .system("cannot bind the control socket \(path)", String(cString: strerror(bindError)))
        }
        chmod(path, 0o600)
        var made = stat()
        _ = lstat(path, &made)
        identity = (UInt64(made.st_dev), UInt64(made.st_ino))
        guard listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw .system("cannot listen on the control socket \(path)", why)
        }
        descriptor = fd
        let thread = Thread { [self] in acceptLoop(onConnection) }
        thread.name = "parley-control-accept"
        thread.start()
    }

    /// Runs on its own thread until `stop`; it alone closes the listening descriptor, so
    /// the number is never reused while it may still call `accept` on it.
    private func acceptLoop(_ onConnection: @escaping @Sendable (ControlConnection) -> Void) {
        defer { close(descriptor) }
        while !stopped.withLock({ $0 }) {
            let client = accept(descriptor, nil, nil)
            if client < 0 {
                if stopped.withLock({ $0 }) { return }
                if errno != EINTR && errno != ECONNABORTED {
                    usleep(100_000)  // out of descriptors or memory for now: try again
                }
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var credentials = PeerCredentials()
            var length = socklen_t(MemoryLayout<PeerCredentials>.size)
            let known = getsockopt(client, SOL_SOCKET, PeerCredentials.option, &credentials, &length) == 0
            guard known, credentials.uid == getuid() || credentials.uid == 0 else {
                close(client)
                continue
            }
            let connection = ControlConnection(descriptor: client) { [weak self] connection in
                self?.connections.withLock { $0[ObjectIdentifier(connection)] = nil }
            }
            let admitted = connections.withLock { list -> Bool in
                guard list.count < Self.maxConnections else { return false }
                list[ObjectIdentifier(connection)] = connection
                return true
            }
            guard admitted else {
                connection.write(#"{"command":"connect","error":"too many control connections","ok":false,"v":1}"#)
                connection.close()
                continue
            }
            onConnection(connection)
        }
    }

    /// Stops accepting, closes every connection and removes the socket file.
    public func stop() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(descriptor, Int32(SHUT_RDWR))  // wakes the accept thread, which closes it
        var now = stat()
        if lstat(path, &now) == 0, UInt64(now.st_dev) == identity.device, UInt64(now.st_ino) == identity.inode {
            unlink(path)
        }
        for connection in connections.withLock({ Array($0.values) }) { connection.close() }
    }

    static func address(_ path: String) throws(ControlSocketError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return address
    }
}

/// Linux's `struct ucred` and `SO_PEERCRED`, which Glibc's module map leaves out (they
/// need `_GNU_SOURCE`): the process id, user id and group id of a Unix socket's peer.
struct PeerCredentials {
    static let option: Int32 = 17  // SO_PEERCRED on Linux
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// One client of the control socket: its request lines in, answer and event lines out.
public final class ControlConnection: @unchecked Sendable {
    private let descriptor: Int32
    private let writeLock = Locked(false)  // true once closed
    private let onClose: @Sendable (ControlConnection) -> Void

    /// How long one write may wait for a client that does not read; then it is dropped.
    public static let writeTimeoutSeconds = 2

    init(descriptor: Int32, onClose: @escaping @Sendable (ControlConnection) -> Void) {
        self.descriptor = descriptor
        self.onClose = onClose
        var limit = timeval(tv_sec: Self.writeTimeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The client's lines, read by a thread of this connection; ends when the client hangs
    /// up or sends a line longer than ``ControlCodec/maxLineBytes``.
    public func lines() -> AsyncStream<String> {
        let (stream, sink) = AsyncStream<String>.makeStream()
        let thread = Thread { [self] in
            readLines { sink.yield($0) }
            sink.finish()
        }
        thread.name = "parley-control-read"
        thread.start()
        return stream
    }

    /// Reads the client's lines on the calling thread, handing each to `body`, until the
    /// client hangs up or sends a line longer than ``ControlCodec/maxLineBytes``.
    func readLines(_ body: (String) -> Void) {
        var reader = LineReader(descriptor: descriptor)
        while let line = reader.next() { body(line) }
    }

    /// Writes one line (a newline is added); a client that has gone is ignored.
    public func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        let failed = writeLock.withLock { closed -> Bool in
            guard !closed else { return false }
            return !writeAll(descriptor, bytes, within: .seconds(Self.writeTimeoutSeconds))
        }
        if failed { close() }
    }

    /// Closes the connection; its reader ends, and a write under way fails at once (the
    /// shutdown comes before the write lock, which a stuck write holds).
    public func close() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        let first = writeLock.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        if first { onClose(self) }
    }

    deinit { Glibc.close(descriptor) }
}

/// `parley ctl`'s side: one connection to a node's control socket.
public final class ControlClient: @unchecked Sendable {
    public let path: String
    private let descriptor: Int32
    private var reader: LineReader

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
        reader = LineReader(descriptor: descriptor)
    }

    deinit { close(descriptor) }

    /// Connects, failing at once if nobody listens and after `timeout` if the node does not
    /// accept (a full backlog). The socket's owner must be this user (or root): a socket
    /// another user put at the path after the node stopped gets no command of ours.
    public static func connect(path: String, timeout: Duration) throws(ControlSocketError) -> ControlClient {
        let fd: Int32
        switch dial(path: path, within: timeout) {
        case let .connected(descriptor): fd = descriptor
        case let .failed(code):
            throw .unreachable(path, code == ENOENT ? "no such socket" : code == ECONNREFUSED ? "nobody listens on it" : String(cString: strerror(code)))
        case .timedOut: throw .timeout(path)
        }
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, PeerCredentials.option, &credentials, &length) == 0,
            credentials.uid == getuid() || credentials.uid == 0
        else {
            close(fd)
            throw .unreachable(path, "the socket belongs to another user")
        }
        return ControlClient(path: path, descriptor: fd)
    }

    enum Probe { case answered, refused, unsure }

    /// Whether a node listens on `path`: `refused` only when the kernel says nobody does.
    static func probe(path: String, within limit: Duration) -> Probe {
        switch dial(path: path, within: limit) {
        case let .connected(descriptor):
            close(descriptor)
            return .answered
        case let .failed(code): return code == ECONNREFUSED ? .refused : .unsure
        case .timedOut: return .unsure
        }
    }

    private enum Dial {
        case connected(Int32)
        case failed(Int32)
        case timedOut
    }

    /// A non-blocking connect, waited on with `poll` up to `limit`; the descriptor comes
    /// back blocking. A full backlog (EAGAIN on a Unix socket) is tried again until then.
    private static func dial(path: String, within limit: Duration) -> Dial {
        let deadline = ContinuousClock.now + limit
        while true {
            switch dialOnce(path: path, within: limit) {
            case .failed(EAGAIN) where ContinuousClock.now < deadline: usleep(50_000)
            case .failed(EAGAIN): return .timedOut
            case let other: return other
            }
        }
    }

    private static func dialOnce(path: String, within limit: Duration) -> Dial {
        guard var address = try? ControlSocketServer.address(path) else { return .failed(ENAMETOOLONG) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failed(errno) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected != 0 {
            let code = errno
            guard code == EINPROGRESS else {
                close(fd)
                return .failed(code)
            }
            let milliseconds = Int32(clamping: limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000)
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, milliseconds) == 1 else {
                close(fd)
                return .timedOut
            }
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) != 0 || failure != 0 {
                close(fd)
                return .failed(failure == 0 ? errno : failure)
            }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        return .connected(fd)
    }

    /// Sends one request line.
    public func send(_ request: ControlRequest) throws(ControlSocketError) {
        let text: String
        do { text = try ControlCodec.line(request) } catch { throw .system("cannot encode the request", "\(error)") }
        guard writeAll(descriptor, Array((text + "\n").utf8)) else { throw .closed }
    }

    /// The next line from the node, waiting at most until `deadline`.
    public func nextLine(before deadline: ContinuousClock.Instant) throws(ControlSocketError) -> String {
        while true {
            if let line = reader.buffered() { return line }
            let left = deadline - .now
            guard left > .zero else { throw .timeout(path) }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 60_000))
            let ready = poll(&poller, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            guard reader.fill() else {
                if let line = reader.buffered() { return line }
                throw .closed
            }
        }
    }

    /// Sends `request` and returns its answer, keeping the events that arrive meanwhile.
    public func call(
        _ request: ControlRequest, timeout: Duration, onEvent: (ControlEvent) -> Void = { _ in }
    ) throws(ControlSocketError) -> ControlResponse {
        var request = request
        if request.id == nil { request.id = "ctl-\(getpid())" }
        try send(request)
        let deadline = ContinuousClock.now + timeout
        while true {
            let line = try nextLine(before: deadline)
            switch try? ControlCodec.decodeLine(line) {
            case let .response(response)? where response.id == request.id: return response
            case let .event(event)?: onEvent(event)
            default: continue
            }
        }
    }
}

/// Lines from a file descriptor, each at most ``ControlCodec/maxLineBytes``.
struct LineReader {
    let descriptor: Int32
    private var pending: [UInt8] = []
    private var overlong = false

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// The next line, blocking; nil at the end or after an over-long line.
    mutating func next() -> String? {
        while true {
            if let line = buffered() { return line }
            if overlong { return nil }
            guard fill() else { return nil }
        }
    }

    /// A whole line already read, if there is one.
    mutating func buffered() -> String? {
        guard let newline = pending.firstIndex(of: UInt8(ascii: "\n")) else {
            if pending.count > ControlCodec.maxLineBytes { overlong = true }
            return nil
        }
        var line = pending[..<newline]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let text = String(decoding: line, as: UTF8.self)
        pending.removeSubrange(...newline)
        return text
    }

    /// Reads what is there (blocking); false at the end or on an error.
    mutating func fill() -> Bool {
        if overlong { return false }
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { return true }
        guard count > 0 else { return false }
        pending += chunk[..<count]
        return true
    }
}

/// Writes every byte; false if the other end has gone, or has not taken them all within
/// `limit` (a client that reads a trickle is not kept waited on for ever).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8], within limit: Duration = .seconds(10)) -> Bool {
    let deadline = ContinuousClock.now + limit
    var offset = 0
    while offset < bytes.count {
        if ContinuousClock.now > deadline { return false }
        let written = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}
