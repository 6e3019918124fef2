import ParleyWire

/// What `parley demo --json` prints.
package struct DemoResult: Encodable {
    struct Payout: Encodable {
        var alice: Amount
        var bob: Amount
    }

    var payments: Int
    var seconds: Double
    var updatesPerSecond: Double
    var p50Micros: Double
    var p99Micros: Double
    var finalVersion: UInt64
    var settledVersion: UInt64
    var payout: Payout
    var deposits: Amount
    var dispute: DemoDispute
    var staleVersion: UInt64?
    var chain: String
    var journals: [String: String]
    var durability: String
    var build: String

    private enum CodingKeys: String, CodingKey {
        case payments, seconds, updatesPerSecond, p50Micros, p99Micros, finalVersion, settledVersion, payout, deposits
        case dispute, staleVersion, chain, journals, durability, build
    }

    /// Written by hand so `staleVersion` appears as `null` outside cheat mode.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(payments, forKey: .payments)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(updatesPerSecond, forKey: .updatesPerSecond)
        try container.encode(p50Micros, forKey: .p50Micros)
        try container.encode(p99Micros, forKey: .p99Micros)
        try container.encode(finalVersion, forKey: .finalVersion)
        try container.encode(settledVersion, forKey: .settledVersion)
        try container.encode(payout, forKey: .payout)
        try container.encode(deposits, forKey: .deposits)
        try container.encode(dispute, forKey: .dispute)
        try container.encode(staleVersion, forKey: .staleVersion)
        try container.encode(chain, forKey: .chain)
        try container.encode(journals, forKey: .journals)
        try container.encode(durability, forKey: .durability)
        try container.encode(build, forKey: .build)
    }
}

package struct DemoFailure: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}
