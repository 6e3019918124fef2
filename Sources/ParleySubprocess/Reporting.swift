import Foundation

/// How `parley bench`, `parley demo` and `game-server --load` turn measurements into report
/// numbers: one copy of each rule, so their numbers are computed the same way.
public enum Reporting {
    /// `duration` in seconds.
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `value` rounded to `digits` decimal places, as the JSON reports print it.
    public static func rounded(_ value: Double, digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    /// Whether this build was optimised; benchmarks report it so a debug number is never
    /// mistaken for a release one. (SwiftPM builds every module of a product in one
    /// configuration, so this module's answer is the executable's.)
    public static var buildConfiguration: String {
        #if DEBUG
        "debug"
        #else
        "release"
        #endif
    }

    /// "1 channel", "2 channels".
    public static func plural(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }
}
