import ArgumentParser
import Foundation

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
    writeToStandardError("parley \(command): \(message)\n")
    return ExitCode.failure
}

func writeToStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Redraws a `\r`-updated progress line on stderr every `interval` until the task is
/// cancelled, then clears it. `line` returns nil while there is nothing worth showing yet.
func showProgressLine(every interval: Duration, _ line: () -> String?) async {
    var shown = false
    while !Task.isCancelled {
        try? await Task.sleep(for: interval)
        guard !Task.isCancelled, let text = line() else { continue }
        writeToStandardError("\r\(text)   ")
        shown = true
    }
    if shown { writeToStandardError("\r\u{1B}[2K") }
}

func plural(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

func durationSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func rounded(_ value: Double, digits: Int) -> Double {
    let scale = pow(10, Double(digits))
    return (value * scale).rounded() / scale
}

/// Whether this binary was built with optimisation; benchmarks report it so a debug
/// number is never mistaken for a release one.
var buildConfiguration: String {
    #if DEBUG
    "debug"
    #else
    "release"
    #endif
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
