import ParleyChannel
import ParleyCrypto

/// A channel engine whose journal records are made durable before any effect that depends on them.
///
/// This is the only public way to drive a `ChannelEngine`: `handle` feeds the
/// input, appends every `.journal` record the engine produced (one group
/// commit), and only then returns the remaining effects — sends, handler
/// questions, notifications — in their original order. A signature therefore
/// cannot leave before it is durable, and a countersigned state cannot be
/// acknowledged, reported or used on chain before it is durable (Docs/Protocol.md
/// invariants 1 and 2), whatever the caller does with the result.
///
/// If the journal has stopped (disk full, I/O error), `handle` throws before
/// the engine sees the input, so nothing further is signed.
public struct JournaledEngine: Sendable {
    public private(set) var engine: ChannelEngine
    public let journal: Journal

    /// The most payments one proposal carries (`ChannelEngine.maxPaymentsPerUpdate`); at least 1.
    public var maxPaymentsPerUpdate: Int {
        get { engine.maxPaymentsPerUpdate }
        set { engine.maxPaymentsPerUpdate = max(1, newValue) }
    }

    /// Proposes a channel; returns the engine and the effects to perform (the open proposal to send).
    public static func propose(
        params: ChannelParams, allocation: Allocation, appData: [UInt8] = [],
        key: any StateSigner, rules: any AppRules = PaymentApp(), journal: Journal
    ) async throws -> (JournaledEngine, [Effect]) {
        try refuseIfStopped(journal)
        let (engine, effects) = try ChannelEngine.propose(
            params: params, allocation: allocation, appData: appData, key: key, rules: rules)
        return (JournaledEngine(engine: engine, journal: journal), try await persist(effects, of: engine, in: journal))
    }

    /// Accepts a peer's channel proposal; returns the engine and the effects (the accept to send).
    public static func accept(
        _ proposal: OpenProposal, key: any StateSigner, rules: any AppRules = PaymentApp(), journal: Journal
    ) async throws -> (JournaledEngine, [Effect]) {
        try refuseIfStopped(journal)
        let (engine, effects) = try ChannelEngine.accept(proposal, key: key, rules: rules)
        return (JournaledEngine(engine: engine, journal: journal), try await persist(effects, of: engine, in: journal))
    }

    /// The engine for a channel the journal recovered; it starts disconnected.
    public static func restore(
        _ record: ChannelRecord, key: any StateSigner, rules: any AppRules = PaymentApp(), journal: Journal
    ) throws -> JournaledEngine {
        let engine = try ChannelEngine.restore(
            params: record.params, latest: record.latest,
            highestSignedVersion: max(record.highestSignedVersion, record.pending?.version ?? 0),
            signedFinal: record.signedFinal, signedNext: record.pending, key: key, rules: rules)
        return JournaledEngine(engine: engine, journal: journal)
    }

    /// Feeds one input; returns the effects to perform once their journal records are durable.
    public mutating func handle(_ input: EngineInput) async throws(JournalError) -> [Effect] {
        try Self.refuseIfStopped(journal)
        let effects = engine.handle(input)
        return try await Self.persist(effects, of: engine, in: journal)
    }

    /// Burns every version up to `version` durably, as if we had signed it: journals
    /// `.aborted(version:)` (recovery counts it as signed), then tells the engine. For a
    /// node that sends a deliberately malformed, signed proposal (drills' `tamper`), which
    /// must never share a version with a state it signs later (invariant 1).
    public mutating func reserveVersions(through version: UInt64, signed: SignedState? = nil) async throws(JournalError) {
        try Self.refuseIfStopped(journal)
        let record = signed.map { [JournalEntry(.signed($0), channelID: engine.channelID)] } ?? []
        try await journal.append(record + [JournalEntry(.aborted(version: version), channelID: engine.channelID)])
        engine.reserveVersions(through: version, signed: signed)
    }

    /// Our signature on `state`, a move on chain: journaled (as `.signed`) before it is
    /// returned, at a version above every version we signed; or the signature we already
    /// gave this very state. Throws `UpdateRejection.versionAlreadySigned` rather than sign a
    /// second state of one version (Docs/Protocol.md invariant 1), or a `JournalError`.
    public mutating func signForChain(_ state: ChannelState) async throws -> StateSignature {
        try Self.refuseIfStopped(journal)
        let (signature, record) = try engine.signForChain(state)
        if let record { try await journal.append([JournalEntry(.signed(record), channelID: engine.channelID)]) }
        return signature
    }

    /// `handle` for callers without an async context; blocks until the records are durable.
    public mutating func handleBlocking(_ input: EngineInput) throws(JournalError) -> [Effect] {
        try Self.refuseIfStopped(journal)
        let effects = engine.handle(input)
        let (records, rest) = Self.split(effects, of: engine)
        if !records.isEmpty { try journal.appendBlocking(records) }
        return rest
    }

    private static func persist(
        _ effects: consuming [Effect], of engine: ChannelEngine, in journal: Journal
    ) async throws(JournalError) -> [Effect] {
        let (records, rest) = split(effects, of: engine)
        if !records.isEmpty { try await journal.append(records) }
        return rest
    }

    /// Journal records, in order, and the other effects, in order. Performing
    /// every record before every other effect only ever delays an effect, so
    /// it keeps the engine's ordering contract.
    ///
    /// Runs on every update, so it allocates only the records' array: the other
    /// effects are filtered in place in the engine's own (consumed) list.
    private static func split(_ effects: consuming [Effect], of engine: ChannelEngine) -> ([JournalEntry], [Effect]) {
        var records: [JournalEntry] = []
        for index in effects.indices {
            guard case let .journal(record) = effects[index] else { continue }
            if records.isEmpty { records.reserveCapacity(effects.count) }
            records.append(JournalEntry(record, channelID: engine.channelID))
        }
        guard !records.isEmpty else { return ([], effects) }
        effects.removeAll { if case .journal = $0 { true } else { false } }
        return (records, effects)
    }

    private static func refuseIfStopped(_ journal: Journal) throws(JournalError) {
        if let failure = journal.stoppedBecause { throw .stopped(after: failure.description) }
    }
}
