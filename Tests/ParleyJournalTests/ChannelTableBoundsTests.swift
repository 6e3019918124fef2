import ParleyChannel
import ParleyWire
import Testing

@testable import ParleyJournal

/// Recovery replays whatever a journal file says through `ChannelTable`; no content may trap it.
@Suite struct ChannelTableBoundsTests {
    /// A snapshot whose latest state is at the last version, with a pending one there too,
    /// then an older commit: computing "the version after latest" overflowed and trapped the
    /// node at start-up (found by review of the journal fuzz target, issue 23).
    @Test func aLatestStateAtTheLastVersionDoesNotTrapRecovery() {
        let params = JournalFixtures.params()
        let last = JournalFixtures.signed(
            JournalFixtures.state(params, version: .max, Amount(40), Amount(60)), by: [.first, .second])
        let older = JournalFixtures.signed(
            JournalFixtures.state(params, version: 5, Amount(45), Amount(55)), by: [.first, .second])
        let record = ChannelRecord(
            params: params, funding: Allocation(Amount(50), Amount(50)), latest: last, highestSignedVersion: .max,
            pending: last, signedFinal: nil, exit: nil, dispute: nil, isClosed: false)
        var table = ChannelTable()
        table.apply(JournalEntry(channelID: params.id, body: .snapshot(record)))
        table.apply(JournalEntry(.committed(older), channelID: params.id))
        #expect(table.channels[params.id]?.latest == last, "an older commit does not replace the latest")
        #expect(table.channels[params.id]?.pending == nil, "nothing can follow the last version")
    }
}
