import Foundation
/// A run's story, in lanes like the drill report's: the honest node, the wire, Mallory,
/// the chain, and the faults the simulator injected, each line at its virtual instant.
public struct SimTrace: Sendable {
    public enum Lane: String, Sendable, CaseIterable {
        case honest, wire, mallory, chain, fault
    }

    public struct Line: Sendable {
        public let at: Duration
        public let step: Int
        public let lane: Lane
        public let text: String
    }

    public private(set) var lines: [Line] = []
    /// Past this many lines the oldest are dropped (a failure shows the end of the story).
    public let limit: Int

    public init(limit: Int = 4_000) {
        self.limit = limit
    }

    mutating func add(_ lane: Lane, _ text: String, at: Duration, step: Int) {
        lines.append(Line(at: at, step: step, lane: lane, text: text))
        if lines.count > limit + limit / 4 { lines.removeFirst(lines.count - limit) }
    }

    /// The lanes side by side: one column per lane, one row per line.
    public func rendered(width: Int = 30) -> String {
        let lanes = Lane.allCases
        func cell(_ text: String) -> String {
            let clipped = text.count > width ? String(text.prefix(width - 1)) + "…" : text
            return clipped + String(repeating: " ", count: max(0, width - clipped.count))
        }
        var out = "  step      time │ " + lanes.map { cell($0.rawValue) }.joined(separator: "│ ") + "\n"
        out += String(repeating: "─", count: 18 + (width + 2) * lanes.count) + "\n"
        for line in lines {
            let seconds = Double(line.at.components.seconds) + Double(line.at.components.attoseconds) / 1e18
            let time = String(format: "%9.3fs", seconds)
            let step = String(repeating: " ", count: max(0, 6 - String(line.step).count)) + String(line.step)
            let cells = lanes.map { $0 == line.lane ? cell(line.text) : cell("") }
            out += step + " " + time + " │ " + cells.joined(separator: "│ ") + "\n"
            // Long texts continue on the next row of their lane.
            var rest = line.text.count > width ? String(line.text.dropFirst(width - 1)) : ""
            while !rest.isEmpty {
                let piece = String(rest.prefix(width - 1))
                rest = String(rest.dropFirst(width - 1))
                let cells = lanes.map { $0 == line.lane ? cell("…" + piece) : cell("") }
                out += String(repeating: " ", count: 17) + "│ " + cells.joined(separator: "│ ") + "\n"
            }
        }
        return out
    }
}
