import Foundation
import ParleyLocks
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process with its stdin and stdout piped to us, its stdout read line by line on
/// a thread of its own: `parley bench`'s peer, `game-server --load`'s clients, and the
/// drills' nodes and devchain. Reading never blocks a Swift concurrency thread.
///
/// Every stdout line is kept, in order, and read by index (`line(from:within:where:)`,
/// with a deadline) or in sequence (`lines`): a drill looks back at what a node printed,
/// the others read on. One reader at a time. A child still running when this is released
/// is killed.
public final class PipedChild: Sendable {
    /// What becomes of the child's stderr.
    public enum ErrorOutput: Sendable {
        /// Shared with ours (the child's diagnostics show where ours do).
        case inherit
        /// Kept (the first MiB) for `standardError`, to explain a child that failed.
        case capture
    }

    private struct Output {
        var lines: [String] = []
        var ended = false
        var errorBytes: [UInt8] = []
        /// The reader waiting for a line (a wait without a deadline).
        var waiter: CheckedContinuation<Void, Never>?

        mutating func takeWaiter() -> CheckedContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    private let process: SpawnedProcess
    private let input: FileHandle
    private let output = Locked(Output())
    /// `terminate` or `kill` was called: `deinit` leaves the child alone.
    private let terminationAsked = Atomic<Bool>(false)

    /// The running executable's path (`/proc/self/exe`), falling back to `argv[0]`.
    public static var ownExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Starts `executable arguments…` (this executable by default); `readerName` names the
    /// stdout thread (for debuggers).
    public init(
        readerName: String = "piped-child-stdout", executable: String = ownExecutable, arguments: [String],
        standardError: ErrorOutput = .inherit
    ) throws {
        let process = try SpawnedProcess(
            executable: executable, arguments: arguments, standardInput: .pipe, standardOutput: .pipe,
            standardError: standardError == .capture ? .pipe : .inherit)
        guard let stdin = process.standardInput, let stdout = process.standardOutput else {
            preconditionFailure("SpawnedProcess gives both ends of the pipes it was asked for")
        }
        self.process = process
        input = stdin
        let output = self.output
        let reader = Thread {
            var pending: [UInt8] = []
            Self.readAll(stdout) { chunk in
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    output.withLock { $0.lines.append(line); return $0.takeWaiter() }?.resume()
                }
            }
            output.withLock { $0.ended = true; return $0.takeWaiter() }?.resume()
        }
        reader.name = readerName
        reader.start()
        if let stderr = process.standardError {
            Thread {
                Self.readAll(stderr) { chunk in
                    output.withLock { if $0.errorBytes.count < 1 << 20 { $0.errorBytes += chunk } }
                }
            }.start()
        }
    }

    /// A child nobody asked to end dies with its handle; one asked to (`terminate`, `kill`)
    /// keeps its time to shut down.
    deinit {
        if !terminationAsked.load(ordering: .relaxed) { process.signal(SIGKILL) }
    }

    /// Reads `handle` to its end, handing each chunk to `consume`; keeps `handle` open until then.
    private static func readAll(_ handle: FileHandle, _ consume: ([UInt8]) -> Void) {
        let fd = handle.fileDescriptor
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            consume(Array(chunk[0..<count]))
        }
        _ = handle  // open until the reader is done
    }

    public var processIdentifier: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// How many stdout lines have arrived.
    public var lineCount: Int { output.withLock { $0.lines.count } }
    /// Whether the child has closed its stdout (usually: it exited).
    public var hasEnded: Bool { output.withLock { $0.ended } }
    /// What the child wrote to stderr, with `.capture`; empty otherwise.
    public var standardError: String { output.withLock { String(decoding: $0.errorBytes, as: UTF8.self) } }

    /// The stdout lines from `index` on that have arrived.
    public func lines(from index: Int) -> [String] {
        output.withLock { index < $0.lines.count ? Array($0.lines[index...]) : [] }
    }

    /// The first line at or after `index` that `match` accepts, and its index; nil once
    /// stdout has ended, or `timeout` (if any) has passed, without one.
    public func line(
        from index: Int, within timeout: Duration? = nil, where match: (String) -> Bool = { _ in true }
    ) async -> (line: String, index: Int)? {
        let end = timeout.map { ContinuousClock.now + $0 }
        var next = index
        while true {
            let (fresh, ended) = output.withLock { (next < $0.lines.count ? Array($0.lines[next...]) : [], $0.ended) }
            for line in fresh {
                if match(line) { return (line, next) }
                next += 1
            }
            if ended || Task.isCancelled { return nil }
            if let end {
                if ContinuousClock.now >= end { return nil }
                try? await Task.sleep(for: .milliseconds(2))
            } else {
                await waitForLine(beyond: next)
            }
        }
    }

    /// Suspends until there are more than `count` lines, stdout ends, or the task is cancelled.
    private func waitForLine(beyond count: Int) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = output.withLock { state in
                    if state.lines.count > count || state.ended || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            output.withLock { $0.takeWaiter() }?.resume()
        }
    }

    /// The stdout lines in order from the first, ending when stdout does.
    public var lines: Lines { Lines(child: self) }

    /// Stdout read on from the first line (`parley bench`'s peer, the game server's clients).
    public struct Lines: AsyncSequence, Sendable {
        public typealias Element = String
        let child: PipedChild

        public struct Iterator: AsyncIteratorProtocol {
            let child: PipedChild
            var next = 0

            public mutating func next() async -> String? {
                guard let (line, index) = await child.line(from: next) else { return nil }
                next = index + 1
                return line
            }
        }

        public func makeAsyncIterator() -> Iterator { Iterator(child: child) }
    }

    /// Writes one line to the child's stdin; throws once the child is gone.
    public func send(_ line: String) throws {
        try input.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Waits for the child to exit (polling, so no cooperative thread blocks); its status.
    public func exitStatus() async -> Int32 {
        await process.exit(pollingEvery: .milliseconds(20)).status
    }

    /// Sends `farewell` (if any), closes stdin, waits up to `timeout`, then kills the child.
    public func stop(saying farewell: String? = "quit", timeout: Duration = .seconds(5)) async {
        if let farewell { try? send(farewell) }
        try? input.close()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning {
            process.signal(SIGKILL)
            _ = await process.exit()
        }
    }

    /// Asks the child to end (SIGTERM), without waiting; the child then gets its time to
    /// shut down (no SIGKILL when this object goes).
    public func terminate() {
        terminationAsked.store(true, ordering: .relaxed)
        process.signal(SIGTERM)
    }

    /// Sends `signal` (SIGKILL by default) and waits until the child has ended and is reaped
    /// (polling, so no cooperative thread blocks).
    public func kill(_ signal: Int32 = SIGKILL) async {
        terminationAsked.store(true, ordering: .relaxed)
        process.signal(signal)
        _ = await process.exit(pollingEvery: .milliseconds(5))
    }
}

