import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyWire

// What `parley journal inspect` prints: a journal's channels and their records, read-only.

/// One channel as `inspect` shows it. Encodes `pending` and `dispute` as null when absent.
package struct ChannelSummary: Encodable {
    package var id: String
    package var participants: [String]
    package var participantShortIDs: [String]
    package var app: String
    package var funding: [Amount]
    package var version: UInt64
    package var balances: [Amount]
    package var fullySigned: Bool
    package var final: Bool
    package var highestSigned: UInt64
    package var pending: UInt64?
    package var dispute: String?
    package var closed: Bool
    package var history: [HistoryLine]?

    package init(_ record: ChannelRecord, history: [HistoryLine]?) {
        id = record.channelID.description
        participants = record.params.participants.map(\.hex)
        participantShortIDs = record.params.participants.map(\.shortID)
        app = record.params.appID.rawValue
        funding = record.funding.balances
        version = record.latest.version
        balances = record.latest.state.allocation.balances
        fullySigned = record.latest.isFullySigned
        final = record.latest.state.isFinal
        highestSigned = record.highestSignedVersion
        pending = record.pending?.version
        dispute = record.dispute?.summary
        closed = record.isClosed
        self.history = history
    }

    package enum CodingKeys: String, CodingKey {
        case id, participants, app, funding, version, balances, fullySigned, final, highestSigned, pending, dispute, closed
        case history
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(participants, forKey: .participants)
        try container.encode(app, forKey: .app)
        try container.encode(funding, forKey: .funding)
        try container.encode(version, forKey: .version)
        try container.encode(balances, forKey: .balances)
        try container.encode(fullySigned, forKey: .fullySigned)
        try container.encode(final, forKey: .final)
        try container.encode(highestSigned, forKey: .highestSigned)
        try container.encode(pending, forKey: .pending)
        try container.encode(dispute, forKey: .dispute)
        try container.encode(closed, forKey: .closed)
        try container.encodeIfPresent(history, forKey: .history)
    }

    package var text: String {
        let total = funding.reduce(0 as Amount) { $0.addingReportingOverflow($1).partialValue }
        var lines = [
            "channel \(id)",
            field("participants", participantShortIDs.joined(separator: ", ")),
            field("app", app),
            field("funding", "[\(funding.map(String.init).joined(separator: ", "))], total \(total)"),
            field("latest", "version \(version), balances [\(balances.map(String.init).joined(separator: ", "))]"
                + (fullySigned ? "" : " (awaiting the peer's signature)")),
            field("final", final ? "yes" : "no"),
            field("highest signed", "version \(highestSigned)"),
            field("pending", pending.map { "proposal for version \($0)" } ?? "none"),
            field("dispute", dispute ?? "none"),
            field("closed", closed ? "yes" : "no"),
        ]
        if let history {
            lines.append("  history (\(history.count) record\(history.count == 1 ? "" : "s")):")
            lines += history.map { "    " + $0.text }
        }
        return lines.joined(separator: "\n")
    }

    private func field(_ label: String, _ value: String) -> String {
        "  " + label.padding(toLength: 16, withPad: " ", startingAt: 0) + value
    }
}

/// One record of a channel's history, as `inspect --history` lists it.
package struct HistoryLine: Encodable {
    package var kind: String
    package var version: UInt64?
    package var balances: [Amount]?
    package var detail: String?

    package static func lines(of channel: ChannelID, in entries: [JournalEntry]) -> [HistoryLine] {
        entries.filter { $0.channelID == channel }.map { HistoryLine($0.body) }
    }

    package init(_ body: JournalEntry.Body) {
        switch body {
        case let .engine(.opened(params, funding)):
            self.init(kind: "opened", version: 0, balances: funding.balances,
                      detail: "app \(params.appID), challenge \(params.challengeDuration) s")
        case let .engine(.signed(signed)):
            self.init(kind: "signed", signed)
        case let .engine(.committed(signed)):
            self.init(kind: "committed", signed)
        case let .engine(.aborted(version)):
            self.init(kind: "aborted", version: version, balances: nil, detail: "proposal burned")
        case let .dispute(event):
            self.init(kind: "dispute", version: event.version, balances: nil, detail: event.summary)
        case .closed:
            self.init(kind: "closed", version: nil, balances: nil, detail: nil)
        case let .exitDecided(reason):
            self.init(kind: "exit", version: nil, balances: nil, detail: "leaving on chain: \(reason.explanation)")
        case let .snapshot(record):
            let pending = record.pending.map { ", pending version \($0.version)" } ?? ""
            self.init(kind: "snapshot", version: record.latest.version, balances: record.latest.state.allocation.balances,
                      detail: "highest signed version \(record.highestSignedVersion)\(pending)")
        }
    }

    private init(kind: String, _ signed: SignedState) {
        let seats = ParticipantIndex.allCases.filter { signed[$0] != nil }.map { String($0.rawValue) }
        let signers = switch seats.count {
        case 0: "no signatures"
        case 1: "signed by seat \(seats[0]) only"
        default: "signed by both seats"
        }
        self.init(kind: kind, version: signed.version, balances: signed.state.allocation.balances,
                  detail: signers + (signed.state.isFinal ? ", final" : ""))
    }

    private init(kind: String, version: UInt64?, balances: [Amount]?, detail: String?) {
        self.kind = kind
        self.version = version
        self.balances = balances
        self.detail = detail
    }

    package var text: String {
        let version = self.version.map { "v\($0)" } ?? "-"
        let balances = self.balances.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? ""
        return [
            kind.padding(toLength: 10, withPad: " ", startingAt: 0),
            version.padding(toLength: 8, withPad: " ", startingAt: 0),
            balances.padding(toLength: 24, withPad: " ", startingAt: 0),
            detail ?? "",
        ].joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }
}

/// What `parley journal inspect` shows of a whole journal.
package struct JournalSummary: Encodable {
    package var channels: [ChannelSummary]
    package var records: Int
    package var segments: Int
    package var truncatedTail: Bool

    package init(channels: [ChannelSummary], records: Int, segments: Int, truncatedTail: Bool) {
        self.channels = channels
        self.records = records
        self.segments = segments
        self.truncatedTail = truncatedTail
    }
}

extension DisputeEvent {
    /// One line for `parley journal inspect --history`.
    var summary: String {
    switch self {
    case let .registered(version, deadline): return "version \(version) registered on chain, challenge ends at \(deadline)"
    case let .refuted(version): return "refuted with version \(version)"
    case let .progressed(version): return "progressed on chain to version \(version)"
    case let .concluded(version): return "concluded on chain at version \(version)"
    case let .withdrawn(amount): return "withdrew \(amount)"
    }
    }
}

extension DisputeEvent {
    /// The state version the event concerns, if any.
    fileprivate var version: UInt64? {
        switch self {
        case let .registered(version, _), let .refuted(version), let .progressed(version), let .concluded(version):
            return version
        case .withdrawn:
            return nil
        }
    }
}
