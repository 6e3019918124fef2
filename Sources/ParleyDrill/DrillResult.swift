/// What a drill run produced: per-step verdicts and a timeline for people.
public struct DrillResult: Sendable, Encodable {
    public var name: String
    public var path: String
    public var description: String
    public var passed: Bool
    public var steps: [StepResult]
    /// Everything that happened, in order; the text output and the HTML report draw this.
    public var timeline: [TimelineEntry]
    public var seed: UInt64
    public var peers: [String]

    public struct StepResult: Sendable, Encodable {
        /// The step as written, e.g. `pay {from: alice, amount: 10, count: 3}`.
        public var step: String
        public var line: Int
        public var ok: Bool
        public var detail: String
    }

    /// `--json` prints name, passed and steps (plus where and how it ran).
    private enum CodingKeys: String, CodingKey { case name, passed, steps, path, seed }
}

/// One row of the timeline. `from`/`to` are lanes: a peer's name or `chain`.
public struct TimelineEntry: Sendable, Encodable {
    public enum Kind: String, Sendable, Encodable {
        /// A peer sent something to the other peer (payments, tampered updates).
        case message
        /// A transaction or event on chain (registrations, refutations, payouts).
        case chain
        /// Something about one lane (keep, silence, crash, restart), or across both.
        case note
        /// Chain time moved.
        case time
        /// An expectation held.
        case pass
        /// A step or expectation failed.
        case fail
    }

    public var time: UInt64
    public var kind: Kind
    public var from: String
    public var to: String?
    public var text: String
    /// Highlight: a refutation, a stale registration, a crash.
    public var emphasis: Bool = false
}

extension DrillResult {
    /// A readable timeline with the verdict, for a terminal.
    public var text: String {
        var out = "drill \(name)" + (description.isEmpty ? "" : " — \(description)") + "\n"
        for entry in timeline {
            let who = entry.to.map { "\(entry.from) → \($0)" } ?? entry.from
            let mark: String
            switch entry.kind {
            case .pass: mark = "✓"
            case .fail: mark = "✗"
            case .time: mark = "◷"
            default: mark = entry.emphasis ? "!" : " "
            }
            let time = "t=\(entry.time)".padding(toLength: 8, withPad: " ", startingAt: 0)
            out += "  \(time) \(mark) \(who.padding(toLength: 16, withPad: " ", startingAt: 0)) \(entry.text)\n"
        }
        let failed = steps.filter { !$0.ok }
        if passed {
            out += "PASS \(name) (\(steps.count) steps)\n"
        } else {
            for step in failed { out += "FAIL \(path):\(step.line): \(step.step): \(step.detail)\n" }
            if failed.isEmpty { out += "FAIL \(name)\n" }
        }
        return out
    }
}
