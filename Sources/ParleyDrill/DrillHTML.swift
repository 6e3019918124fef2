/// A self-contained HTML page for a run: per drill a sequence diagram (the two peers and
/// the chain as lanes; payments, registrations, refutations and payouts as arrows) and the
/// verdict of every step; a table of contents when several drills ran. Cut labels show
/// their whole text on hover (SVG `<title>`); a peer's lane is drawn down between its
/// crash and its restart. No scripts, no external files, no glyph that needs an emoji font.
public enum DrillHTML {
    /// The timeline notes that start and end a peer's down time (the runner writes them).
    static let crashNote = "crashes (SIGKILL)"
    static let restartNote = "restarts from its journal"

    public static func page(_ results: [DrillResult]) -> String {
        let passed = results.filter(\.passed).count
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>Parley drills: \(passed)/\(results.count) passed</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #fafbfc; }
            h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 36px; }
            .badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: white; font-weight: 600; font-size: 13px; }
            .pass { background: #1f883d; } .fail { background: #cf222e; }
            .desc { color: #57606a; margin: 4px 0 12px; }
            svg { background: white; border: 1px solid #d0d7de; border-radius: 6px; }
            table { border-collapse: collapse; margin-top: 12px; }
            td, th { border-bottom: 1px solid #eaeef2; padding: 4px 10px; text-align: left; vertical-align: top; }
            td.ok { color: #1f883d; font-weight: 600; } td.bad { color: #cf222e; font-weight: 600; }
            code { font: 12px ui-monospace, monospace; }
            .legend span { margin-right: 18px; }
            nav ol { padding-left: 22px; } nav li { margin: 2px 0; }
            </style></head><body>
            <h1>Parley drills <span class="badge \(passed == results.count ? "pass" : "fail")">\(passed)/\(results.count) passed</span></h1>
            <p class="legend"><span style="color:#0969da">→ payment or message</span><span style="color:#cf222e">⇢ stale registration, tampering, crash</span><span style="color:#1f883d">⇒ refutation, exit, payout</span><span style="color:#8250df">- - chain time</span></p>

            """
        if results.count > 1 {
            html += "<nav><ol>\n"
            for (index, result) in results.enumerated() {
                html += "<li><a href=\"#drill-\(index + 1)\">\(escape(result.name))</a> "
                    + "<span class=\"badge \(result.passed ? "pass" : "fail")\">\(result.passed ? "PASS" : "FAIL")</span></li>\n"
            }
            html += "</ol></nav>\n"
        }
        for (index, result) in results.enumerated() { html += section(result, anchor: "drill-\(index + 1)") }
        html += "</body></html>\n"
        return html
    }

    static func section(_ result: DrillResult, anchor: String = "drill-1") -> String {
        var out = "<h2 id=\"\(anchor)\">\(escape(result.name)) <span class=\"badge \(result.passed ? "pass" : "fail")\">\(result.passed ? "PASS" : "FAIL")</span></h2>\n"
        if !result.description.isEmpty { out += "<p class=\"desc\">\(escape(result.description))</p>\n" }
        out += diagram(result)
        out += "<table><tr><th>line</th><th>step</th><th></th><th>detail</th></tr>\n"
        for step in result.steps {
            out += "<tr><td>\(step.line)</td><td><code>\(escape(step.step))</code></td>"
                + "<td class=\"\(step.ok ? "ok" : "bad")\">\(step.ok ? "✓" : "✗")</td><td>\(escape(step.detail))</td></tr>\n"
        }
        out += "</table>\n"
        return out
    }

    static func diagram(_ result: DrillResult) -> String {
        let width = 900
        let rowHeight = 34
        let top = 74
        let lanes = [result.peers.first ?? "a", "chain", result.peers.dropFirst().first ?? "b"]
        let x: [String: Int] = [lanes[0]: 150, "chain": width / 2, lanes[2]: width - 150]
        let height = top + rowHeight * (result.timeline.count + 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">\n"
        svg += "<defs>"
        for (id, color) in [("blue", "#0969da"), ("red", "#cf222e"), ("green", "#1f883d"), ("grey", "#57606a")] {
            svg += "<marker id=\"a-\(id)\" markerUnits=\"userSpaceOnUse\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"\(color)\"/></marker>"
        }
        svg += "</defs>\n"
        for lane in lanes {
            let lx = x[lane] ?? 0
            let fill = lane == "chain" ? "#fff8c5" : "#ddf4ff"
            svg += "<rect x=\"\(lx - 60)\" y=\"14\" width=\"120\" height=\"32\" rx=\"6\" fill=\"\(fill)\" stroke=\"#57606a\"/>"
            svg += "<text x=\"\(lx)\" y=\"35\" text-anchor=\"middle\" font-weight=\"600\">\(escape(lane))</text>\n"
            svg += "<line x1=\"\(lx)\" y1=\"46\" x2=\"\(lx)\" y2=\"\(height - 8)\" stroke=\"#d0d7de\" stroke-width=\"2\"/>\n"
        }
        let chainX = x["chain"] ?? width / 2
        for (lane, rows) in downTime(result.timeline) {
            guard let lx = x[lane] else { continue }
            let y1 = top + rows.lowerBound * rowHeight
            let y2 = rows.upperBound < result.timeline.count ? top + rows.upperBound * rowHeight : height - 8
            svg += "<line x1=\"\(lx)\" y1=\"\(y1)\" x2=\"\(lx)\" y2=\"\(y2)\" stroke=\"#cf222e\" stroke-width=\"4\" stroke-dasharray=\"3 5\"><title>\(escape(lane)) is down</title></line>"
            svg += "<text x=\"\(lx + 8)\" y=\"\((y1 + y2) / 2)\" fill=\"#cf222e\" font-size=\"11\">down</text>\n"
        }
        for (row, entry) in result.timeline.enumerated() {
            let y = top + row * rowHeight
            svg += "<text x=\"8\" y=\"\(y + 4)\" font-size=\"11\" fill=\"#8c959f\">t=\(entry.time)</text>"
            switch entry.kind {
            case .time:
                svg += "<line x1=\"60\" y1=\"\(y)\" x2=\"\(width - 20)\" y2=\"\(y)\" stroke=\"#8250df\" stroke-dasharray=\"6 4\"/>"
                svg += clock(x: width / 2 - 8 - entry.text.count * 4, y: y - 9)
                svg += "<text x=\"\(width / 2)\" y=\"\(y - 5)\" text-anchor=\"middle\" fill=\"#8250df\" font-weight=\"600\">\(escape(entry.text))</text>\n"
            case .pass, .fail:
                let color = entry.kind == .pass ? "#1f883d" : "#cf222e"
                let fill = entry.kind == .pass ? "#dafbe1" : "#ffebe9"
                svg += "<rect x=\"60\" y=\"\(y - 14)\" width=\"\(width - 80)\" height=\"24\" rx=\"4\" fill=\"\(fill)\" stroke=\"\(color)\"/>"
                svg += "<text x=\"72\" y=\"\(y + 3)\" fill=\"\(color)\" font-size=\"12\">\(entry.kind == .pass ? "✓" : "✗") \(label(entry.text, 120))</text>\n"
            case .message, .chain, .note:
                let from = x[entry.from] ?? chainX
                if let toLane = entry.to, let to = x[toLane], to != from {
                    let (color, marker, dash, weight) = style(entry)
                    let direction = to > from ? 1 : -1
                    svg += "<line x1=\"\(from + direction * 4)\" y1=\"\(y)\" x2=\"\(to - direction * 6)\" y2=\"\(y)\" stroke=\"\(color)\" stroke-width=\"\(weight)\"\(dash) marker-end=\"url(#\(marker))\"/>"
                    let bold = entry.emphasis ? " font-weight=\"700\"" : ""
                    svg += "<text x=\"\((from + to) / 2)\" y=\"\(y - 6)\" text-anchor=\"middle\" fill=\"\(color)\" font-size=\"12\"\(bold)>\(label(entry.text, 60))</text>\n"
                } else {
                    svg += box(at: from, y: y, text: entry.text, emphasis: entry.emphasis, width: width)
                }
            }
        }
        svg += "</svg>\n"
        return svg
    }

    /// Colour, arrowhead, dash and weight of an arrow.
    private static func style(_ entry: TimelineEntry) -> (String, String, String, Int) {
        if entry.kind == .note { return ("#57606a", "a-grey", " stroke-dasharray=\"2 4\"", 1) }
        if entry.text.hasPrefix("refuted") || entry.text.hasPrefix("paid out") {
            return ("#1f883d", "a-green", "", entry.emphasis ? 3 : 2)
        }
        if entry.emphasis { return ("#cf222e", "a-red", " stroke-dasharray=\"7 4\"", 2) }
        if entry.kind == .chain { return ("#57606a", "a-grey", "", 1) }
        return ("#0969da", "a-blue", "", 1)
    }

    private static func box(at x: Int, y: Int, text: String, emphasis: Bool, width: Int) -> String {
        let shown = clip(text, 46)
        let boxWidth = min(max(shown.count * 7 + 16, 60), 340)
        let left = min(max(x - boxWidth / 2, 50), width - boxWidth - 4)
        let stroke = emphasis ? "#cf222e" : "#8c959f"
        let fill = emphasis ? "#ffebe9" : "#f6f8fa"
        return "<rect x=\"\(left)\" y=\"\(y - 13)\" width=\"\(boxWidth)\" height=\"22\" rx=\"4\" fill=\"\(fill)\" stroke=\"\(stroke)\"/>"
            + "<text x=\"\(left + boxWidth / 2)\" y=\"\(y + 3)\" text-anchor=\"middle\" font-size=\"12\">\(label(text, 46))</text>\n"
    }

    /// `text` cut to `limit` characters, with the whole text as its hover title when cut.
    static func label(_ text: String, _ limit: Int) -> String {
        let shown = clip(text, limit)
        return escape(shown) + (shown == text ? "" : "<title>\(escape(text))</title>")
    }

    /// A small clock drawn in SVG (a circle and two hands), for chain-time rows.
    static func clock(x: Int, y: Int) -> String {
        "<g stroke=\"#8250df\" stroke-width=\"1.5\" fill=\"none\"><circle cx=\"\(x)\" cy=\"\(y)\" r=\"6\"/>"
            + "<path d=\"M\(x),\(y) L\(x),\(y - 4) M\(x),\(y) L\(x + 3),\(y)\"/></g>"
    }

    /// For each peer, the timeline rows from its crash to its restart (open-ended if it
    /// never restarted).
    static func downTime(_ timeline: [TimelineEntry]) -> [(String, Range<Int>)] {
        var down: [String: Int] = [:]
        var spans: [(String, Range<Int>)] = []
        for (row, entry) in timeline.enumerated() {
            if entry.text == crashNote { down[entry.from] = row }
            if entry.text == restartNote, let start = down.removeValue(forKey: entry.from) { spans.append((entry.from, start..<row)) }
        }
        for (lane, start) in down { spans.append((lane, start..<timeline.count)) }
        return spans
    }

    private static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
