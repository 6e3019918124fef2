import Foundation

/// What the commands write to standard error besides their output: diagnostics and a
/// progress line, kept off stdout so JSON output stays parseable.
public enum Terminal {
    /// Writes `text` to standard error, unbuffered (progress lines, diagnostics).
    public static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Redraws a `\r`-updated progress line on stderr every `interval` until the task is
    /// cancelled, then clears it. `line` returns nil while there is nothing worth showing yet.
    public static func showProgressLine(every interval: Duration, _ line: () -> String?) async {
        var shown = false
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled, let text = line() else { continue }
            writeError("\r\(text)\u{1B}[K")
            shown = true
        }
        if shown { writeError("\r\u{1B}[2K") }
    }
}
