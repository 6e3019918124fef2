import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleyWire
import Testing

@Suite struct JournalVerifierTests {
    @Test(arguments: ChannelBackendID.allCases)
    func wellFormedJournalVerifiesWithItsCounts(backend: ChannelBackendID) throws {
        let dir = try VerifierScratch.journal(
            VerifierScratch.openerHistory(VerifierScratch.params(nonce: 1, backend: backend))
                + VerifierScratch.responderHistory(VerifierScratch.params(nonce: 2, backend: backend)))
        defer { VerifierScratch.remove(dir) }
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.violation == nil, "\(report.violation.map(String.init(describing:)) ?? "")")
        #expect(report.ok)
        #expect(report.records == 12)
        #expect(report.channels == 2)
        #expect(report.segments == 1)
        #expect(!report.truncatedTail)
    }

    @Test(arguments: ChannelBackendID.allCases)
    func committedStateWithAForgedSignatureIsABadSignature(backend: ChannelBackendID) throws {
        let params = VerifierScratch.params(backend: backend)
        var forged = VerifierScratch.signed(params, version: 1, 90, 110)
        forged[.second] = params.sign(forged.state, with: VerifierScratch.signer(VerifierScratch.mallory, backend))
        let dir = try VerifierScratch.journal(VerifierScratch.opening(params) + [.init(.committed(forged), channelID: params.id)])
        defer { VerifierScratch.remove(dir) }
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.violation == .badSignature(channel: params.id, version: 1, signer: .second))
        #expect(report.location == RecordLocation(segment: SegmentFormat.fileName(index: 1), record: 3))
        #expect(!report.ok)
    }

    @Test func inflatedBalancesAreNotConserved() throws {
        let params = VerifierScratch.params()
        let inflated = VerifierScratch.signed(params, version: 1, 150, 100)
        let dir = try VerifierScratch.journal(VerifierScratch.opening(params) + [.init(.committed(inflated), channelID: params.id)])
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .notConserved(channel: params.id, version: 1, total: 250, funded: 200))
    }

    @Test func overflowingBalancesAreNotConserved() throws {
        let params = VerifierScratch.params()
        let overflowing = VerifierScratch.signed(params, version: 1, Amount.max, 2)
        let dir = try VerifierScratch.journal(VerifierScratch.opening(params) + [.init(.signed(overflowing), channelID: params.id)])
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .notConserved(channel: params.id, version: 1, total: nil, funded: 200))
    }

    @Test func committedVersionGoingBackwardsIsRefused() throws {
        let params = VerifierScratch.params()
        let entries = VerifierScratch.opening(params) + [2, 1].map { version in
            JournalEntry(.committed(VerifierScratch.signed(params, version: version, 100, 100)), channelID: params.id)
        }
        let dir = try VerifierScratch.journal(entries)
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .versionNotIncreasing(channel: params.id, previous: 2, got: 1))
    }

    @Test func signingAVersionAlreadyCommittedIsFlagged() throws {
        let params = VerifierScratch.params()
        let resigned = VerifierScratch.signed(params, version: 1, 80, 120, by: [.first])
        let entries = VerifierScratch.opening(params) + [
            JournalEntry(.committed(VerifierScratch.signed(params, version: 1, 90, 110)), channelID: params.id),
            JournalEntry(.signed(resigned), channelID: params.id),
        ]
        let dir = try VerifierScratch.journal(entries)
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .versionSignedTwice(channel: params.id, version: 1, highestSigned: 1))
    }

    @Test func committedStateMissingASignatureIsFlagged() throws {
        let params = VerifierScratch.params()
        let half = VerifierScratch.signed(params, version: 1, 90, 110, by: [.first])
        let dir = try VerifierScratch.journal(VerifierScratch.opening(params) + [.init(.committed(half), channelID: params.id)])
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .missingSignature(channel: params.id, version: 1, signer: .second))
    }

    @Test func signingAfterACommittedFinalStateIsFlagged() throws {
        let params = VerifierScratch.params()
        let entries = VerifierScratch.opening(params) + [
            JournalEntry(.committed(VerifierScratch.signed(params, version: 1, 90, 110, isFinal: true)), channelID: params.id),
            JournalEntry(.signed(VerifierScratch.signed(params, version: 2, 80, 120, by: [.first])), channelID: params.id),
        ]
        let dir = try VerifierScratch.journal(entries)
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .updateAfterFinal(channel: params.id, finalVersion: 1, got: 2))
    }

    @Test func recordForAChannelNeverOpenedIsAnOrphan() throws {
        let opened = VerifierScratch.params(nonce: 1)
        let stranger = VerifierScratch.params(nonce: 2)
        let entries = VerifierScratch.opening(opened) + [
            JournalEntry(.committed(VerifierScratch.signed(stranger, version: 1, 100, 100)), channelID: stranger.id)
        ]
        let dir = try VerifierScratch.journal(entries)
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation == .orphanRecord(channel: stranger.id))
    }

    @Test func flippedByteInsideASegmentMakesItUnreadable() throws {
        let dir = try VerifierScratch.journal(VerifierScratch.openerHistory())
        defer { VerifierScratch.remove(dir) }
        let path = VerifierScratch.segmentPath(dir)
        var bytes = try VerifierScratch.read(path)
        bytes[bytes.count / 2] ^= 0x40
        try VerifierScratch.write(bytes, to: path)
        let report = JournalVerifier.verify(directory: dir)
        guard case .unreadable(.corrupted) = report.violation else {
            Issue.record("expected a corrupted segment, got \(String(describing: report.violation))")
            return
        }
        #expect(!report.ok)
    }

    @Test func tornTailIsReportedAndLeftInPlace() throws {
        let dir = try VerifierScratch.journal(VerifierScratch.openerHistory())
        defer { VerifierScratch.remove(dir) }
        let path = VerifierScratch.segmentPath(dir)
        let torn = Array(try VerifierScratch.read(path).dropLast(5))
        try VerifierScratch.write(torn, to: path)
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.ok)
        #expect(report.truncatedTail)
        #expect(report.records == VerifierScratch.openerHistory().count - 1)
        #expect(try VerifierScratch.read(path) == torn)
    }

    @Test func verifyReadsAJournalAnotherProcessHoldsOpen() throws {
        let dir = VerifierScratch.newDirectory()
        defer { VerifierScratch.remove(dir) }
        let journal = try Journal(directory: dir, durability: .none)
        defer { journal.close() }
        try journal.appendBlocking(VerifierScratch.openerHistory())
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.ok)
        #expect(report.records == VerifierScratch.openerHistory().count)
    }

    @Test func snapshotRestartsAChannelsHistory() throws {
        let params = VerifierScratch.params()
        let record = VerifierScratch.record(params, latest: VerifierScratch.signed(params, version: 5, 95, 105))
        let entries = [
            JournalEntry(channelID: params.id, body: .snapshot(record)),
            JournalEntry(.committed(VerifierScratch.signed(params, version: 6, 94, 106)), channelID: params.id),
            JournalEntry(.committed(VerifierScratch.signed(params, version: 3, 97, 103)), channelID: params.id),
        ]
        let dir = try VerifierScratch.journal(entries)
        defer { VerifierScratch.remove(dir) }
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.violation == .versionNotIncreasing(channel: params.id, previous: 6, got: 3))
        #expect(report.location?.record == 3)
    }

    @Test func snapshotWithAForgedLatestStateIsABadSignature() throws {
        let params = VerifierScratch.params()
        var forged = VerifierScratch.signed(params, version: 5, 95, 105)
        forged[.first] = forged.state.signed(by: VerifierScratch.mallory)
        let dir = try VerifierScratch.journal([
            JournalEntry(channelID: params.id, body: .snapshot(VerifierScratch.record(params, latest: forged)))
        ])
        defer { VerifierScratch.remove(dir) }
        #expect(JournalVerifier.verify(directory: dir).violation
            == .badSignature(channel: params.id, version: 5, signer: .first))
    }

    @Test func compactedJournalVerifies() throws {
        let params = VerifierScratch.params()
        let dir = VerifierScratch.newDirectory()
        defer { VerifierScratch.remove(dir) }
        let journal = try Journal(directory: dir, durability: .none, maxSegmentBytes: 2048)
        for entry in VerifierScratch.opening(params) { try journal.appendBlocking([entry]) }
        for version in UInt64(1)...40 {
            let state = VerifierScratch.signed(params, version: version, 100 - Amount(version), 100 + Amount(version))
            try journal.appendBlocking([JournalEntry(.committed(state), channelID: params.id)])
        }
        let compactions = journal.statistics.compactions
        journal.close()
        #expect(compactions > 0)
        let report = JournalVerifier.verify(directory: dir)
        #expect(report.violation == nil, "\(report.violation.map(String.init(describing:)) ?? "")")
    }

    /// Compaction deletes old segments oldest first; a crash part way leaves later ones behind,
    /// whose records precede the snapshot that supersedes them.
    @Test func segmentsLeftByAnInterruptedCompactionAreNotOrphans() throws {
        let params = VerifierScratch.params()
        let leftover = [JournalEntry(.committed(VerifierScratch.signed(params, version: 1, 99, 101)), channelID: params.id)]
        let snapshot = JournalEntry(
            channelID: params.id,
            body: .snapshot(VerifierScratch.record(params, latest: VerifierScratch.signed(params, version: 1, 99, 101))))
        let dir = VerifierScratch.newDirectory()
        defer { VerifierScratch.remove(dir) }
        try VerifierScratch.writeSegment(index: 2, leftover, in: dir)
        try VerifierScratch.writeSegment(index: 3, [snapshot], in: dir)
        #expect(JournalVerifier.verify(directory: dir).ok)
        try FileManager.default.removeItem(atPath: dir + "/" + SegmentFormat.fileName(index: 3))
        #expect(JournalVerifier.verify(directory: dir).violation == .orphanRecord(channel: params.id))
    }

    @Test func violationDescriptionNamesChannelVersionAndProblem() {
        let params = VerifierScratch.params()
        let text = JournalViolation.notConserved(channel: params.id, version: 7, total: 250, funded: 200).description
        #expect(text.contains(params.id.shortID))
        #expect(text.contains("version 7"))
        #expect(text.contains("250") && text.contains("200"))
    }
}

/// Journals built from real signed states in temporary directories.
private enum VerifierScratch {
    static func key(_ n: UInt8) -> SigningKey {
        (try? SigningKey(seed: [UInt8](repeating: n, count: 32))) ?? SigningKey()
    }

    static let alice = key(11)
    static let bob = key(12)
    static let mallory = key(13)

    /// What signs for `key` on `backend`: the identity, or its derived settlement key.
    static func signer(_ key: SigningKey, _ backend: ChannelBackendID) -> any StateSigner {
        key.stateSigner(for: backend)
    }

    static func params(nonce: UInt8 = 9, backend: ChannelBackendID = .ed25519) -> ChannelParams {
        // Fixed, valid inputs.
        try! ChannelParams(
            participants: [alice.publicKey, bob.publicKey],
            signers: backend == .ed25519 ? nil : [alice, bob].map { signer($0, backend).settlementAddress },
            nonce: [UInt8](repeating: nonce, count: ChannelParams.nonceBytes),
            domain: backend == .ed25519
                ? .embedded : try! SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20)))
    }

    static func signed(
        _ params: ChannelParams, version: UInt64, _ a: Amount, _ b: Amount,
        by signers: [ParticipantIndex] = [.first, .second], isFinal: Bool = false
    ) -> SignedState {
        let state = ChannelState(channelID: params.id, version: version, allocation: Allocation(a, b), isFinal: isFinal)
        var signed = SignedState(state: state)
        for seat in signers { signed[seat] = params.sign(state, with: signer(seat == .first ? alice : bob, params.backendID)) }
        return signed
    }

    /// `opened` with funding (100, 100), then the fully-signed version 0.
    static func opening(_ params: ChannelParams) -> [JournalEntry] {
        [
            JournalEntry(.opened(params, funding: Allocation(100, 100)), channelID: params.id),
            JournalEntry(.committed(signed(params, version: 0, 100, 100)), channelID: params.id),
        ]
    }

    /// The opener's journal: its own signature on version 0, then the commit, a payment, a burned proposal,
    /// an incoming payment, a dispute and the close. Nine records.
    static func openerHistory(_ params: ChannelParams = params(nonce: 1)) -> [JournalEntry] {
        let id = params.id
        return [
            JournalEntry(.opened(params, funding: Allocation(100, 100)), channelID: id),
            JournalEntry(.signed(signed(params, version: 0, 100, 100, by: [.first])), channelID: id),
            JournalEntry(.committed(signed(params, version: 0, 100, 100)), channelID: id),
            JournalEntry(.signed(signed(params, version: 1, 90, 110, by: [.first])), channelID: id),
            JournalEntry(.committed(signed(params, version: 1, 90, 110)), channelID: id),
            JournalEntry(.signed(signed(params, version: 2, 80, 120, by: [.first])), channelID: id),
            JournalEntry(.aborted(version: 2), channelID: id),
            JournalEntry(.committed(signed(params, version: 3, 95, 105)), channelID: id),
            JournalEntry(channelID: id, body: .dispute(.registered(version: 3, deadline: 1_000))),
        ]
    }

    /// The responder's journal: opened, the fully-signed version 0, and the close. Three records.
    static func responderHistory(_ params: ChannelParams = params(nonce: 2)) -> [JournalEntry] {
        opening(params) + [JournalEntry(channelID: params.id, body: .closed)]
    }

    /// The channel as a snapshot would carry it, with `latest` as its newest state.
    static func record(_ params: ChannelParams, latest: SignedState) -> ChannelRecord {
        var table = ChannelTable()
        table.apply(opening(params)[0])
        // The table holds the channel it was just given.
        var record = table.channels[params.id]!
        record.latest = latest
        record.highestSignedVersion = latest.version
        return record
    }

    static func newDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("parley-verifier-\(UUID().uuidString)").path
    }

    /// A closed journal holding `entries`, written through `Journal` one record per append.
    static func journal(_ entries: [JournalEntry]) throws -> String {
        let dir = newDirectory()
        let journal = try Journal(directory: dir, durability: .none)
        defer { journal.close() }
        for entry in entries { try journal.appendBlocking([entry]) }
        return dir
    }

    /// A segment file written byte by byte, for layouts `Journal` only leaves behind after a crash.
    static func writeSegment(index: UInt64, _ entries: [JournalEntry], in dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var bytes = SegmentFormat.header(index: index)
        for entry in entries { SegmentFormat.frame(entry.wireBytes, into: &bytes) }
        try write(bytes, to: dir + "/" + SegmentFormat.fileName(index: index))
    }

    static func segmentPath(_ dir: String) -> String {
        dir + "/" + SegmentFormat.fileName(index: 1)
    }

    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func remove(_ dir: String) {
        try? FileManager.default.removeItem(atPath: dir)
    }
}
