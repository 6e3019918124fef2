import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Numbers the load run reports, measured the same way everywhere.
enum Measurement {
    /// The `fraction` quantile of `values` (nearest rank), 0 when empty.
    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func micros(_ duration: Duration) -> Double { seconds(duration) * 1e6 }

    static func rounded(_ value: Double, digits: Int = 1) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }
}

/// Writes `text` to standard error unbuffered (progress lines, diagnostics).
func writeToStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Rewrites one status line on stderr every `interval` until cancelled, then erases it.
func showProgressLine(every interval: Duration, _ line: @Sendable () -> String) async {
    var shown = false
    while !Task.isCancelled {
        try? await Task.sleep(for: interval)
        guard !Task.isCancelled else { break }
        writeToStandardError("\r\(line())\u{1B}[K")
        shown = true
    }
    if shown { writeToStandardError("\r\u{1B}[2K") }
}

/// A fresh directory under the system's temporary directory.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw GameServerFailure("cannot make a temporary directory for \(prefix)") }
    return String(cString: made)
}

/// A failure the commands report on stderr before exiting 1.
struct GameServerFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
