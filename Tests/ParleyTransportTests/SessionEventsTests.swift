import Foundation
import ParleyLocks
import Testing

@testable import ParleyTransport

/// The inbox between a session's loop thread and its one reader.
@Suite struct SessionEventsTests {
    /// A reader that gets `.closed` and asks again must get the end of the sequence, however
    /// the loop thread's `finish` and the reader's next `next()` interleave. `finish` once
    /// pushed `.closed` and marked the inbox finished in two steps; a reader that asked in
    /// between waited for ever (a devchain client hung with its request in flight after the
    /// daemon was killed). Each round races a producer thread's last message and `finish`
    /// against a reader on the cooperative pool; every reader must end.
    @Test func everyReaderSeesTheEndHoweverFinishRacesIt() async throws {
        let batches = 200
        let perBatch = 200
        for batch in 0..<batches {
            let inboxes = (0..<perBatch).map { _ in SessionInbox(highWater: 1 << 20, lowWater: 1 << 19) }
            let ended = Locked(0)
            let readers = inboxes.map { inbox in
                Task {
                    var events = 0
                    while await inbox.next() != nil { events += 1 }
                    ended.withLock { $0 += 1 }
                    return events
                }
            }
            let producer = Thread {
                for (index, inbox) in inboxes.enumerated() {
                    inbox.push(.message([UInt8(index & 0xff)]))
                    inbox.finish(.localClose("inbox \(index)"))
                }
            }
            producer.start()
            let finished = await eventually(within: .seconds(10)) { ended.withLock { $0 } == perBatch }
            let stuck = perBatch - ended.withLock { $0 }
            try #require(finished, "batch \(batch): \(stuck) of \(perBatch) readers never saw the end of their events")
            for reader in readers { #expect(await reader.value == 2, "the message, then .closed") }
        }
    }

    @Test func finishIsDeliveredOnceAndAfterEverythingBeforeIt() async {
        let inbox = SessionInbox(highWater: 1 << 20, lowWater: 1 << 19)
        inbox.push(.message([1]))
        inbox.finish(.localClose("first"))
        inbox.finish(.localClose("second"))
        inbox.push(.message([2]))
        var events: [SessionEvent] = []
        while let event = await inbox.next() { events.append(event) }
        #expect(events == [.message([1]), .closed(.localClose("first"))])
    }
}
