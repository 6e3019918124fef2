import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This executable, run again as a child with its stdin and stdout piped to us and its
/// stderr shared. The load generator runs its clients this way, in a process of their own.
/// `@unchecked`: `Process` is not marked `Sendable`; we only read its state and signal it.
final class ChildProcess: @unchecked Sendable {
    private let process: Process
    private let input: FileHandle
    /// The child's stdout, line by line; ends when the child closes it.
    let lines: AsyncStream<String>

    /// The running executable's path (`/proc/self/exe`), falling back to `argv[0]`.
    static var ownExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    init(arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.ownExecutable)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()
        self.process = process
        input = stdin.fileHandleForWriting
        let (lines, sink) = AsyncStream<String>.makeStream()
        self.lines = lines
        let fd = stdout.fileHandleForReading.fileDescriptor
        let reader = Thread {
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
        reader.start()
    }

    /// Sends one line to the child's stdin.
    func send(_ line: String) {
        try? input.write(contentsOf: Data((line + "\n").utf8))
    }

    var processIdentifier: Int32 { process.processIdentifier }

    /// Waits for the child to exit (polling, so no cooperative thread blocks); its status.
    func exitStatus() async -> Int32 {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    func kill() {
        if process.isRunning { process.terminate() }
    }
}

/// Our own stdin, a line at a time, read on a thread of its own.
enum StandardInput {
    static func nextLine() async -> String? {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: readLine()) }.start()
        }
    }
}

extension StandardInput {
    /// Exits the process (status 3) once stdin ends. The load run keeps our stdin open while
    /// it lives, so this ends a client whose parent died.
    static func exitAtEndOfInput() {
        Thread {
            while readLine() != nil {}
            writeToStandardError("game-server client: the parent closed stdin; exiting\n")
            exit(3)
        }.start()
    }
}

/// Writes one line to stdout at once (stdout is a pipe to the parent: no buffering).
func writeLine(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
