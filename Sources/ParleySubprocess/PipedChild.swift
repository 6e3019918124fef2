import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This executable, run again as a child with its stdin and stdout piped to us and its
/// stderr shared: how `parley bench` runs its peer and `game-server --load` its clients,
/// each in a process of its own.
///
public final class PipedChild: Sendable {
    private let process: SpawnedProcess
    private let input: FileHandle
    /// The child's stdout, line by line, read on a thread of its own; ends when the child closes it.
    public let lines: AsyncStream<String>

    /// The running executable's path (`/proc/self/exe`), falling back to `argv[0]`.
    public static var ownExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Starts `ownExecutable arguments…`; `readerName` names the stdout thread (for debuggers).
    public init(readerName: String = "piped-child-stdout", arguments: [String]) throws {
        let process = try SpawnedProcess(
            executable: Self.ownExecutable, arguments: arguments, standardInput: .pipe, standardOutput: .pipe,
            standardError: .inherit)
        guard let stdin = process.standardInput, let stdout = process.standardOutput else {
            preconditionFailure("SpawnedProcess gives both ends of the pipes it was asked for")
        }
        self.process = process
        input = stdin
        let (lines, sink) = AsyncStream<String>.makeStream()
        self.lines = lines
        let fd = stdout.fileDescriptor
        let reader = Thread {
            _ = stdout  // kept open until the reader is done
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                pending += chunk[0..<count]
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    sink.yield(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            sink.finish()
        }
        reader.name = readerName
        reader.start()
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// Sends one line to the child's stdin (a child that is gone is ignored).
    public func send(_ line: String) {
        try? input.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Waits for the child to exit (polling, so no cooperative thread blocks); its status.
    public func exitStatus() async -> Int32 {
        await process.exit(pollingEvery: .milliseconds(20)).status
    }

    /// Sends `farewell` (if any), closes stdin, waits up to `timeout`, then kills the child.
    public func stop(saying farewell: String? = "quit", timeout: Duration = .seconds(5)) async {
        if let farewell { send(farewell) }
        try? input.close()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning {
            process.signal(SIGKILL)
            _ = await process.exit()
        }
    }

    /// Asks the child to end (SIGTERM), without waiting.
    public func terminate() {
        process.signal(SIGTERM)
    }

    /// Last resort: SIGKILL, no waiting.
    public func kill() {
        process.signal(SIGKILL)
    }
}
