import ArgumentParser
import DequeModule
import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleyWire

/// `parley-crash-child`: two journaled engines paying each other in one process until killed.
/// A test tool, built only with the tests (`swift build --build-tests`), never shipped in `parley`.
///
/// The victim of `CrashRecoveryTests`, which SIGKILLs it at a random moment
/// and then checks the journals against what it printed. The output is the
/// contract the test checks, so each line is written (unbuffered) only after
/// the `handleBlocking` call that produced its effect has returned, i.e.
/// after the journal said the records behind it are durable:
///
/// - `READY` once the channel is open or restored and reestablished;
/// - `SENT <alice|bob> <version>` for every message carrying our signature;
/// - `COMMITTED <alice|bob> <version>` for every opened or committed state reported.
///
/// Keys and the channel nonce are fixed, so every run (and a restart after a
/// kill) talks about the same channel in `DIR/alice` and `DIR/bob`.
@main
struct JournalCrashChildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-crash-child",
        abstract: "Drive two journaled engines in one process until killed (crash-recovery test helper).")

    @Option(name: .long, help: ArgumentHelp("Directory holding the alice/ and bob/ journals.", valueName: "dir"))
    var dir: String

    @Option(name: .long, help: "Payments to request before exiting; the default runs until killed.")
    var updates = 1_000_000

    @Option(name: .long, help: "Seed for who pays whom, how much and when.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Segment size that triggers compaction (small values exercise crashes mid-compaction).")
    var maxSegmentBytes = Journal.defaultMaxSegmentBytes

    @Option(name: .long, help: "The channel's settlement backend: ed25519 or ethereum. Keep it across restarts of one directory.")
    var backend = ChannelBackendID.ed25519.description

    func validate() throws {
        guard updates >= 0 else { throw ValidationError("--updates must not be negative.") }
        guard maxSegmentBytes > 0 else { throw ValidationError("--max-segment-bytes must be positive.") }
    }

    func run() async throws {
        do {
            guard let backendID = ChannelBackendID.allCases.first(where: { $0.description == backend }) else {
                throw ValidationError("--backend must be ed25519 or ethereum.")
            }
            var child = try CrashChildRun(directory: dir, seed: seed, maxSegmentBytes: maxSegmentBytes, backend: backendID)
            try await child.run(updates: updates)
        } catch {
            FileHandle.standardError.write(Data("parley crash-child: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// Why the child gave up. Any of these means the journals disagree with what recovery promises.
enum CrashChildError: Error, CustomStringConvertible {
    case bobWithoutAlice(ChannelID)
    case channelMismatch(alice: ChannelID, bob: [ChannelID])
    case notReady(alice: Phase?, bob: Phase?)
    case journalEffectLeaked(side: String)

    var description: String {
        switch self {
        case let .bobWithoutAlice(id):
            return "bob's journal holds channel \(id.shortID) but alice's holds none: alice lost her opening record"
        case let .channelMismatch(alice, bob):
            return "alice's journal holds channel \(alice.shortID), bob's holds \(bob.map(\.shortID))"
        case let .notReady(alice, bob):
            return "the channel did not settle to idle after opening or reestablish "
                + "(alice \(alice.map(\.rawValue) ?? "no channel"), bob \(bob.map(\.rawValue) ?? "no channel"))"
        case let .journalEffectLeaked(side):
            return "JournaledEngine handed \(side) a .journal effect; it must perform those itself"
        }
    }
}

/// The fixed identities and channel the child always uses.
enum CrashChildFixture {
    static let names = ["alice", "bob"]
    static let seedBytes: [UInt8] = [0x01, 0x02]
    static let nonce = [UInt8](repeating: 0xC4, count: ChannelParams.nonceBytes)
    static let deposit: Amount = 1_000_000
    static let maxPayment: UInt64 = 3
    /// The Ethereum backend's settlement domain: a local chain id and a contract address.
    static let ethereumDomain = try? SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20))
}

/// One side: its key, journal, engine (nil until it has a channel) and mailboxes.
private struct CrashChildSide {
    let name: String
    let key: SigningKey
    /// What signs states: the identity on Ed25519, its settlement key on Ethereum.
    let signer: any StateSigner
    let journal: Journal
    var engine: JournaledEngine?
    var inbox = Deque<ChannelMessage>()
    var pendingDecisions = Deque<IncomingProposal>()
    var retryPending = false
}

/// Writes one line straight to file descriptor 1, so it is in the pipe before the next step runs.
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Both sides and the in-memory mailboxes between them, driven like Examples/OfflineChannel.
private struct CrashChildRun {
    var sides: [CrashChildSide]
    var random: SeededRandom
    let backend: ChannelBackendID

    init(directory: String, seed: UInt64, maxSegmentBytes: Int, backend: ChannelBackendID) throws {
        var sides: [CrashChildSide] = []
        for (name, seedByte) in zip(CrashChildFixture.names, CrashChildFixture.seedBytes) {
            let key = try SigningKey(seed: [UInt8](repeating: seedByte, count: SigningKey.seedByteCount))
            let journal = try Journal(
                directory: directory + "/" + name, durability: .fsync, maxSegmentBytes: maxSegmentBytes)
            let signer = key.stateSigner(for: backend)
            sides.append(CrashChildSide(name: name, key: key, signer: signer, journal: journal))
        }
        self.sides = sides
        self.backend = backend
        random = SeededRandom(seed: seed)
    }

    mutating func run(updates: Int) async throws {
        defer { for side in sides { side.journal.close() } }
        try await openOrRestore()
        emit("READY")
        var requested = 0
        var nextID: UpdateID = 1
        while requested < updates {
            // One payer, or both at once to exercise the simultaneous-proposal tie-break.
            let payers: [Int] = switch random.next(upperBound: UInt64(3)) {
            case 0: [0, 1]
            case 1: [1]
            default: [0]
            }
            for payer in payers where requested < updates {
                let amount = Amount(1 + random.next(upperBound: CrashChildFixture.maxPayment))
                try await input(.update(nextID, .pay(amount: amount)), to: payer)
                nextID += 1
                requested += 1
            }
            // Now and then let a second request queue behind the first before delivering mail.
            if random.next(upperBound: UInt64(4)) != 0 { try await runUntilQuiet() }
        }
        try await runUntilQuiet()
    }

    /// Restores the channel alice's journal recovered and reestablishes it, or opens a new one.
    private mutating func openOrRestore() async throws {
        let aliceChannels = sides[0].journal.recovery.channels
        let bobChannels = sides[1].journal.recovery.channels
        if let record = aliceChannels.values.first {
            sides[0].engine = try JournaledEngine.restore(record, key: sides[0].signer, journal: sides[0].journal)
            if let bobRecord = bobChannels[record.channelID] {
                sides[1].engine = try JournaledEngine.restore(bobRecord, key: sides[1].signer, journal: sides[1].journal)
            } else if !bobChannels.isEmpty {
                throw CrashChildError.channelMismatch(alice: record.channelID, bob: Array(bobChannels.keys))
            }
            // Without a record bob never accepted: alice's reconnect resends the open proposal.
            for index in sides.indices where sides[index].engine != nil {
                try await input(.connected, to: index)
            }
        } else {
            if let orphan = bobChannels.keys.first { throw CrashChildError.bobWithoutAlice(orphan) }
            let params = try ChannelParams(
                participants: sides.map(\.key.publicKey),
                signers: backend == .ed25519 ? nil : sides.map(\.signer.settlementAddress), nonce: CrashChildFixture.nonce,
                domain: backend == .ed25519 ? .embedded : CrashChildFixture.ethereumDomain ?? .embedded)
            let (engine, effects) = try await JournaledEngine.propose(
                params: params, allocation: Allocation(CrashChildFixture.deposit, CrashChildFixture.deposit),
                key: sides[0].signer, journal: sides[0].journal)
            sides[0].engine = engine
            try perform(effects, by: 0)
        }
        try await runUntilQuiet()
        let phases = sides.map { $0.engine?.engine.phase }
        guard phases.allSatisfy({ $0 == .idle }) else { throw CrashChildError.notReady(alice: phases[0], bob: phases[1]) }
    }

    /// Feeds one input to one side's engine and performs what it returns.
    private mutating func input(_ input: EngineInput, to index: Int) async throws {
        if sides[index].engine == nil {
            // Only an open proposal means anything to a side without a channel.
            guard case let .received(.openProposal(proposal)) = input else { return }
            let (engine, effects) = try await JournaledEngine.accept(
                proposal, key: sides[index].signer, journal: sides[index].journal)
            sides[index].engine = engine
            try perform(effects, by: index)
            return
        }
        let effects = try sides[index].engine!.handleBlocking(input)
        try perform(effects, by: index)
    }

    /// Performs the effects `JournaledEngine` handed back; their journal records are already durable.
    private mutating func perform(_ effects: [Effect], by index: Int) throws {
        let name = sides[index].name
        for effect in effects {
            switch effect {
            case .journal:
                throw CrashChildError.journalEffectLeaked(side: name)
            case let .send(message):
                if let version = Self.signedVersion(of: message) { emit("SENT \(name) \(version)") }
                sides[1 - index].inbox.append(message)
            case let .decide(proposal):
                sides[index].pendingDecisions.append(proposal)
            case let .notify(.committed(signed, _)), let .notify(.opened(signed)):
                emit("COMMITTED \(name) \(signed.version)")
            case .notify, .disconnect:
                break  // no timeouts are ever delivered, so nothing here needs an answer
            case .scheduleRetry:
                sides[index].retryPending = true
            }
        }
    }

    /// The version a message carries our signature on, if it carries one.
    private static func signedVersion(of message: ChannelMessage) -> UInt64? {
        switch message {
        case let .propose(state, _): return state.version
        case let .accept(_, version, _): return version
        case .openProposal, .openAccept: return 0
        case let .commitProof(signed): return signed.version
        case .reject, .reestablish: return nil
        }
    }

    /// Delivers mail and accepts every proposal until nothing moves; a backed-off
    /// retry fires only once all mail is delivered, as a node's retry timer would.
    private mutating func runUntilQuiet() async throws {
        var moved = true
        while moved {
            moved = false
            if let waiting = sides.indices.first(where: { sides[$0].retryPending }),
                sides.allSatisfy({ $0.inbox.isEmpty && $0.pendingDecisions.isEmpty })
            {
                sides[waiting].retryPending = false
                try await input(.retryDue, to: waiting)
                moved = true
            }
            for index in sides.indices {
                while let message = sides[index].inbox.popFirst() {
                    try await input(.received(message), to: index)
                    moved = true
                }
                while let proposal = sides[index].pendingDecisions.popFirst() {
                    try await input(.decided(version: proposal.proposed.version, .accept), to: index)
                    moved = true
                }
            }
        }
    }
}
