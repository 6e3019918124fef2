import Testing

@testable import ParleyDrill

/// The drill report as a reader sees it (issue 22): a table of contents for several
/// drills, whole labels on hover, a clock that needs no emoji font, and a crashed peer's
/// lane drawn down until it restarts.
@Suite struct DrillHTMLTests {
    static func result(_ name: String, timeline: [TimelineEntry]) -> DrillResult {
        DrillResult(
            name: name, path: "\(name).yaml", description: "", passed: true,
            steps: [.init(step: "pay", line: 3, ok: true, detail: "paid")], timeline: timeline, seed: 1,
            peers: ["alice", "bob"])
    }

    static let long = String(repeating: "a very long label that will not fit ", count: 4)

    @Test func severalDrillsGetATableOfContentsWithAnchors() {
        let page = DrillHTML.page([Self.result("one", timeline: []), Self.result("two", timeline: [])])
        #expect(page.contains("<nav>"))
        #expect(page.contains("href=\"#drill-2\">two</a>"))
        #expect(page.contains("id=\"drill-2\""))
        #expect(!DrillHTML.page([Self.result("one", timeline: [])]).contains("<nav>"))
    }

    @Test func cutLabelsCarryTheWholeTextOnHover() {
        let page = DrillHTML.page([
            Self.result("one", timeline: [TimelineEntry(time: 0, kind: .message, from: "alice", to: "bob", text: Self.long)])
        ])
        #expect(page.contains("…<title>\(Self.long)</title>"))
    }

    @Test func theClockIsDrawnNotAnEmoji() {
        let page = DrillHTML.page([
            Self.result("one", timeline: [TimelineEntry(time: 60, kind: .time, from: "chain", to: nil, text: "+60 s")])
        ])
        #expect(!page.contains("⏱"))
        #expect(page.contains("<circle"))
        let emoji = page.unicodeScalars.filter { $0.properties.isEmojiPresentation }
        #expect(emoji.isEmpty, "glyphs that need an emoji font: \(emoji.map { String($0) })")
    }

    @Test func aCrashedPeersLaneIsDownUntilItRestarts() {
        let timeline = [
            TimelineEntry(time: 0, kind: .message, from: "alice", to: "bob", text: "pay 5"),
            TimelineEntry(time: 0, kind: .note, from: "bob", to: nil, text: DrillHTML.crashNote, emphasis: true),
            TimelineEntry(time: 0, kind: .time, from: "chain", to: nil, text: "+30 s"),
            TimelineEntry(time: 30, kind: .note, from: "bob", to: nil, text: DrillHTML.restartNote),
        ]
        let spans = DrillHTML.downTime(timeline)
        #expect(spans.count == 1)
        #expect(spans.first?.0 == "bob" && spans.first?.1 == 1..<3)
        #expect(DrillHTML.page([Self.result("one", timeline: timeline)]).contains("<title>bob is down</title>"))
        let never = DrillHTML.downTime(Array(timeline.prefix(3)))
        #expect(never.first?.1 == 1..<3, "a peer that never restarts is down to the end")
    }
}
