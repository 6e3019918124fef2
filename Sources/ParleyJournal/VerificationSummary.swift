import Foundation

/// What `parley journal verify` prints of a `VerificationReport`.
/// `verify --json`. Encodes `violation` and `location` as null when absent.
package struct VerificationSummary: Encodable {
    package var report: VerificationReport

    package init(_ report: VerificationReport) {
        self.report = report
    }

    package enum CodingKeys: String, CodingKey {
        case ok, records, channels, segments, truncatedTail, violation, location
    }

    package struct Location: Encodable {
        var segment: String
        var record: Int
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(report.ok, forKey: .ok)
        try container.encode(report.records, forKey: .records)
        try container.encode(report.channels, forKey: .channels)
        try container.encode(report.segments, forKey: .segments)
        try container.encode(report.truncatedTail, forKey: .truncatedTail)
        try container.encode(report.violation?.description, forKey: .violation)
        try container.encode(report.location.map { Location(segment: $0.segment, record: $0.record) }, forKey: .location)
    }
}

// MARK: - bench
