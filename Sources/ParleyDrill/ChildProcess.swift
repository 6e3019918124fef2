import Foundation
import ParleyLocks
import ParleySubprocess

/// A child process whose stdout is read line by line on its own thread. Waiting never
/// blocks a Swift concurrency thread: callers poll with `Task.sleep`.
final class ChildProcess: @unchecked Sendable {
    let process: SpawnedProcess
    private let input: FileHandle
    private let lock = PThreadLock()
    private var lines: [String] = []
    private var finished = false
    private var errorText: [UInt8] = []

    /// Starts `executable arguments…`.
    init(executable: String, arguments: [String]) throws {
        process = try SpawnedProcess(
            executable: executable, arguments: arguments, standardInput: .pipe, standardOutput: .pipe, standardError: .pipe)
        guard let stdin = process.standardInput, let stdout = process.standardOutput, let stderr = process.standardError
        else { preconditionFailure("SpawnedProcess gives both ends of the pipes it was asked for") }
        input = stdin
        let out = stdout.fileDescriptor
        let err = stderr.fileDescriptor
        Thread { [self] in
            var pending: [UInt8] = []
            Self.readAll(out) { chunk in
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    lock.withLock { lines.append(line) }
                }
            }
            lock.withLock { finished = true }
        }.start()
        Thread { [self] in
            Self.readAll(err) { chunk in lock.withLock { if errorText.count < 1 << 20 { errorText += chunk } } }
        }.start()
    }

    private static func readAll(_ fd: Int32, _ consume: ([UInt8]) -> Void) {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return }
            consume(Array(chunk[0..<count]))
        }
    }

    var lineCount: Int { lock.withLock { lines.count } }
    var hasEnded: Bool { lock.withLock { finished } }
    var standardError: String { lock.withLock { String(decoding: errorText, as: UTF8.self) } }

    /// The lines printed so far from `index` on.
    func lines(from index: Int) -> [String] {
        lock.withLock { index < lines.count ? Array(lines[index...]) : [] }
    }

    /// Writes one line to the child's stdin.
    func send(_ line: String) throws {
        try input.write(contentsOf: Data((line + "\n").utf8))
    }

    /// The first line at or after `index` that `match` accepts, polling until `timeout`.
    func line(from index: Int, within timeout: Duration, where match: (String) -> Bool) async -> (String, Int)? {
        let end = ContinuousClock.now + timeout
        var next = index
        while true {
            let (snapshot, done) = lock.withLock { (next < lines.count ? Array(lines[next...]) : [], finished) }
            for line in snapshot {
                if match(line) { return (line, next) }
                next += 1
            }
            if done || ContinuousClock.now >= end { return nil }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Sends `signal` (SIGKILL by default) and reaps the process.
    func kill(_ signal: Int32 = SIGKILL) {
        process.signal(signal)
        process.waitUntilExit()
    }

    /// Closes stdin and waits up to `timeout` for a clean exit, then kills.
    func finish(within timeout: Duration) async {
        try? input.close()
        let end = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
        kill()
    }
}
