// Test-only helpers shared by the test targets that run real `parley` subprocesses:
// finding the executable, reading its pipes, and a `parley devchain` daemon fixture.
// Not a product; only test targets depend on it.
import Foundation
import ParleyCrypto
import ParleyDevchain
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking `work` (waiting for a subprocess, reading its pipes) on a thread of its
/// own and returns its result, so the waiting never holds one of the cooperative pool's
/// threads. The pool has one thread per core (two on the CI machine): two tests blocked
/// in a subprocess wait at once used to starve every async test of the run — timers,
/// sockets and `eventually` loops then failed as if the machine were overloaded.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = "test-subprocess-wait"
        thread.start()
    }
}

/// Polls `condition` every 5 ms until it holds, at most `deadline` / 5 ms times; returns
/// whether it held. Counted in polls, not wall time: while CPU-heavy tests hold the
/// cooperative pool, neither this loop nor the work it waits for runs, and a wall-clock
/// deadline would expire during the stall and fail before the work had its turn.
public func eventually(
    within deadline: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
    let interval = Duration.milliseconds(5)
    let polls = max(1, Int((deadline / interval).rounded(.up)))
    for _ in 0..<polls {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Why a test could not set itself up.
public struct DevchainTestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One event loop for every client in this test process (a loop per client would be a thread each).
public enum TestLoop {
    public static let shared: EventLoop? = try? EventLoop(name: "devchain-tests")

    public static func get() throws -> EventLoop {
        guard let loop = shared else { throw DevchainTestFailure("could not start an event loop") }
        return loop
    }
}

/// The `parley` executable the test target depends on, built next to the test bundle.
public enum ParleyExecutable {
    public static let missingMessage = """
        the `parley` executable is not next to the test bundle; build it with \
        `swift build --build-tests` (the test targets that start it depend on it)
        """

    public static func locate() -> String? {
        locate(named: "parley")
    }

    /// An executable product of this package built next to the test bundle (`parley`,
    /// `game-server`, …), or nil.
    public static func locate(named name: String) -> String? {
        var directories: [URL] = []
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append(URL(fileURLWithPath: executable).deletingLastPathComponent())
        }
        directories.append(URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.deletingLastPathComponent())
        let bundle = Bundle.main.bundleURL
        directories += [bundle, bundle.deletingLastPathComponent()]
        // On macOS the runner lives inside `<build dir>/ParleyPackageTests.xctest/Contents/MacOS/`.
        let outsideBundle = directories.map {
            $0.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        }
        for url in directories + outsideBundle {
            let candidate = url.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The executable, or a thrown error (which fails the test): a missing binary must not pass silently.
    public static func require(named name: String = "parley") throws -> String {
        guard let path = locate(named: name) else {
            throw DevchainTestFailure(missingMessage.replacingOccurrences(of: "`parley`", with: "`\(name)`"))
        }
        return path
    }
}

/// Bytes a child writes to a pipe, gathered by a reader thread until end of file.
public final class PipeText: @unchecked Sendable {
    private let condition = NSCondition()
    private var bytes: [UInt8] = []
    private var finished = false

    public init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            let fd = handle.fileDescriptor
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                condition.withLock {
                    bytes += chunk[0..<count]
                    condition.broadcast()
                }
            }
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.start()
    }

    public var text: String { condition.withLock { String(decoding: bytes, as: UTF8.self) } }

    /// Complete lines so far (a trailing fragment without its newline is left out).
    public var lines: [String] {
        condition.withLock { Self.lines(in: bytes) }
    }

    /// Waits until `predicate` holds for the lines so far, end of file, or the deadline;
    /// returns whether it held.
    public func wait(until deadline: Date, for predicate: ([String]) -> Bool) -> Bool {
        condition.withLock {
            while true {
                if predicate(Self.lines(in: bytes)) { return true }
                if finished || !condition.wait(until: deadline) { return predicate(Self.lines(in: bytes)) }
            }
        }
    }

    /// The first complete line, waiting until `deadline`; nil at end of file or timeout.
    public func firstLine(before deadline: Date) -> String? {
        wait(until: deadline, for: { !$0.isEmpty }) ? lines.first : nil
    }

    /// Waits for end of file; returns whether it came before the deadline.
    public func waitForEnd(before deadline: Date) -> Bool {
        condition.withLock {
            while !finished {
                if !condition.wait(until: deadline) { return finished }
            }
            return true
        }
    }
    private static func lines(in bytes: [UInt8]) -> [String] {
        guard let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
        return bytes[..<lastNewline].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
    }
}

/// A `parley devchain` subprocess.
public final class DevchainDaemon: @unchecked Sendable {
    public static let readyTimeout: TimeInterval = 20

    /// What test chains are started with unless a test says otherwise: every client may mint
    /// and advance the clock, as the scenarios need (they mint and move time from
    /// participants' keys). On a daemon without `--identity` every client may anyway; a test
    /// of the operator rules passes `access: []` and an `identity`.
    public static let openAccess = ["--allow-faucet", "--allow-time-travel"]

    public let directory: String
    public let process: SpawnedProcess
    public let address: SocketAddress
    /// The key the daemon proves (from its listening line): clients pin it.
    public let key: PublicKey
    /// The JSON object it printed once listening.
    public let ready: [String: Any]
    public let stdout: PipeText
    public let stderr: PipeText

    /// The write end of its standard input; the daemon stops when it closes.
    private let lifeline: FileHandle?

    private init(
        directory: String, process: SpawnedProcess, address: SocketAddress, key: PublicKey, ready: [String: Any],
        stdout: PipeText, stderr: PipeText
    ) {
        self.lifeline = process.standardInput
        self.directory = directory
        self.process = process
        self.address = address
        self.key = key
        self.ready = ready
        self.stdout = stdout
        self.stderr = stderr
    }

    /// A fresh temporary data directory (the caller removes it).
    public static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("parley-devchain-\(UUID().uuidString)").path
    }

    /// Runs `parley devchain … --json` and waits for its listening line. With `identity` the
    /// key is written to `directory/operator.key` and the daemon started with `--identity`
    /// (its holder is the operator); `access` are the access flags (`openAccess` by default).
    public static func start(
        directory: String, port: UInt16 = 0, timeArguments: [String] = ["--manual-time"], identity: SigningKey? = nil,
        access: [String] = openAccess, extra: [String] = []
    ) throws -> DevchainDaemon {
        var identityArguments: [String] = []
        if let identity {
            let path = directory + "/operator.key"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try KeyFile.write(identity, to: path, overwrite: true)
            identityArguments = ["--identity", path]
        }
        // Time travel needs a manual clock; the daemon refuses the flag otherwise.
        let access = timeArguments.contains("--manual-time") ? access : access.filter { $0 != "--allow-time-travel" }
        // The daemon stops when its standard input ends. We hold the pipe's write end for
        // the daemon's life, so however this test process ends — a crash, a timeout's
        // SIGKILL — the kernel closes it and no daemon outlives the test run.
        let (process, out, err) = try launch(
            ["devchain", "--listen", "127.0.0.1:\(port)", "--data", directory, "--json", "--stop-on-eof"] + timeArguments
                + identityArguments + access + extra,
            standardInput: .pipe)
        guard let line = out.firstLine(before: Date(timeIntervalSinceNow: readyTimeout)) else {
            process.signal(SIGKILL)
            let ended = process.waitUntilExit()
            _ = err.waitForEnd(before: Date(timeIntervalSinceNow: 2))
            throw DevchainTestFailure("parley devchain printed no listening line (\(ended)); stderr: \(err.text)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let listening = object["listening"] as? String, let address = try? SocketAddress(listening),
            let key = (object["key"] as? String).flatMap({ try? PublicKey(humanForm: $0) })
        else {
            process.signal(SIGKILL)
            process.waitUntilExit()
            throw DevchainTestFailure("unexpected listening line: \(line)")
        }
        return DevchainDaemon(
            directory: directory, process: process, address: address, key: key, ready: object, stdout: out, stderr: err)
    }

    /// The address clients dial, pinned to the daemon's key: `devchain://pk1…@HOST:PORT`.
    public var url: String { "devchain://\(key.humanForm)@\(address)" }

    /// Runs `parley arguments…` to completion; returns its status, stdout and stderr. The
    /// wait happens off the cooperative pool (`offPool`).
    public static func run(
        _ arguments: [String], timeout: TimeInterval = 20
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await offPool { try runBlocking(arguments, timeout: timeout) }
    }

    private static func runBlocking(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, stdout: String, stderr: String) {
        let (process, out, err) = try launch(arguments)
        let deadline = Date(timeIntervalSinceNow: timeout)
        guard out.waitForEnd(before: deadline), err.waitForEnd(before: deadline) else {
            process.signal(SIGKILL)
            process.waitUntilExit()
            throw DevchainTestFailure("parley \(arguments.joined(separator: " ")) did not exit within \(timeout) s")
        }
        return (process.waitUntilExit().status, out.text, err.text)
    }

    /// Starts `parley arguments…` with stdout and stderr piped to `PipeText`s.
    public static func launch(
        _ arguments: [String], standardInput: SpawnedProcess.Stream = .null
    ) throws -> (SpawnedProcess, PipeText, PipeText) {
        let process = try SpawnedProcess(
            executable: try ParleyExecutable.require(), arguments: arguments, standardInput: standardInput,
            standardOutput: .pipe, standardError: .pipe)
        guard let out = process.standardOutput, let err = process.standardError else {
            throw DevchainTestFailure("the child's pipes are missing")
        }
        return (process, PipeText(out), PipeText(err))
    }

    public var replayed: Int { ready["replayed"] as? Int ?? -1 }

    /// Closes our end of the daemon's standard input, as this process's death would.
    public func cutLifeline() {
        try? lifeline?.close()
    }

    /// Stops the daemon (SIGSTOP) and returns once the kernel shows it stopped: `kill`
    /// returns before the target has stopped, and a daemon still running on the other core
    /// would answer the next request.
    public func freeze() throws {
        process.signal(SIGSTOP)
        let deadline = Date(timeIntervalSinceNow: 5)
        while Date() < deadline {
            // /proc/PID/stat: "pid (comm) S …"; the state follows the last ')'.
            if let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].hasPrefix(" T")
            {
                return
            }
            usleep(1_000)
        }
        throw DevchainTestFailure("the devchain (pid \(process.processIdentifier)) did not stop within 5 s of SIGSTOP")
    }

    /// Lets a frozen daemon run again (SIGCONT).
    public func thaw() {
        process.signal(SIGCONT)
    }

    /// Sends `signal` and waits for the process to end.
    public func stop(_ signal: Int32 = SIGKILL) {
        defer { try? lifeline?.close() }
        guard process.isRunning else { return }
        process.signal(signal)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A daemon on a fresh data directory, with one client per key (each pinning the daemon's
/// key), torn down when released.
public final class DevchainFixture: Sendable {
    public let daemon: DevchainDaemon
    private let clients = Mutex<[PublicKey: DevchainClient]>([:])
    private let loop: EventLoop

    private init(daemon: DevchainDaemon, loop: EventLoop) {
        self.daemon = daemon
        self.loop = loop
    }

    /// A `--manual-time` daemon; `identity` and `access` as in `DevchainDaemon.start`.
    public static func start(
        identity: SigningKey? = nil, access: [String] = DevchainDaemon.openAccess
    ) throws -> DevchainFixture {
        let loop = try TestLoop.get()
        let daemon = try DevchainDaemon.start(
            directory: DevchainDaemon.temporaryDirectory(), identity: identity, access: access)
        return DevchainFixture(daemon: daemon, loop: loop)
    }

    public func client(for key: SigningKey) -> DevchainClient {
        clients.withLock { clients in
            if let client = clients[key.publicKey] { return client }
            let client = DevchainClient(address: daemon.address, identity: key, loop: loop, expecting: daemon.key)
            clients[key.publicKey] = client
            return client
        }
    }

    deinit {
        daemon.stop()
        try? FileManager.default.removeItem(atPath: daemon.directory)
        let clients = self.clients.withLock { Array($0.values) }
        Task { for client in clients { await client.close() } }
    }
}
