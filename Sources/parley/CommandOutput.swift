import ArgumentParser
import Foundation
import ParleySubprocess

// Output helpers shared by every `parley` command.

/// Prints `value` as one line of JSON with sorted keys.
func printJSON(_ value: some Encodable) throws {
    print(try jsonLine(value))
}

/// `value` as one line of JSON with sorted keys, without the newline.
func jsonLine(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Reports `message` on stderr as `parley <command>: message`; throw the result to exit 1.
func failure(_ command: String, _ message: String) -> ExitCode {
    Terminal.writeError("parley \(command): \(message)\n")
    return ExitCode.failure
}



/// Creates `directory` and any missing parents (mode 0700), as `--journal` always has:
/// `--data /tmp/tour/chain` or `--out /tmp/tour/bob.key` work on a fresh machine.
func createDirectories(_ directory: String) throws {
    guard !directory.isEmpty else { return }
    try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
}

/// Creates the folder `path` goes in, and its parents.
func createParentDirectories(of path: String) throws {
    try createDirectories((path as NSString).deletingLastPathComponent)
}





/// Stdin, line by line. A thread of its own does the blocking reads, so no task of the
/// cooperative pool waits on the terminal.
func standardInputLines(threadName: String) -> AsyncStream<String> {
    let (lines, sink) = AsyncStream<String>.makeStream()
    let reader = Thread {
        while let line = readLine(strippingNewline: true) { sink.yield(line) }
        sink.finish()
    }
    reader.name = threadName
    reader.start()
    return lines
}
