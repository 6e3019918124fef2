import Foundation

// How `parley bench`, `parley demo` and `game-server --load` measure and report: one copy
// of each, so their numbers are computed the same way.

/// The `fraction` quantile of `values` (nearest rank), 0 when empty.
public func percentile(_ values: [Double], _ fraction: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

public func durationSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

public func rounded(_ value: Double, digits: Int) -> Double {
    let scale = pow(10, Double(digits))
    return (value * scale).rounded() / scale
}

/// Whether this build was optimised; benchmarks report it so a debug number is never
/// mistaken for a release one. (SwiftPM builds every module of a product in one
/// configuration, so this module's answer is the executable's.)
public var buildConfiguration: String {
    #if DEBUG
    "debug"
    #else
    "release"
    #endif
}

/// "1 channel", "2 channels".
public func plural(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

/// Writes `text` to standard error, unbuffered (progress lines, diagnostics).
public func writeToStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Redraws a `\r`-updated progress line on stderr every `interval` until the task is
/// cancelled, then clears it. `line` returns nil while there is nothing worth showing yet.
public func showProgressLine(every interval: Duration, _ line: () -> String?) async {
    var shown = false
    while !Task.isCancelled {
        try? await Task.sleep(for: interval)
        guard !Task.isCancelled, let text = line() else { continue }
        writeToStandardError("\r\(text)\u{1B}[K")
        shown = true
    }
    if shown { writeToStandardError("\r\u{1B}[2K") }
}
