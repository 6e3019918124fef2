import ParleyWire

/// What one `parley demo` run does (its command-line options).
package struct DemoOptions: Sendable {
    package var payments = 10_000
    package var deposit: Amount = 1_000_000
    package var dispute: DemoDispute = .none
    /// A devchain address (`devchain://host:port`) to settle on instead of `chain`.
    package var devchain: String?
    package var chain: DemoChainKind = .embedded
    /// Where the journals go; nil: a new temporary directory.
    package var data: String?
    package var challenge: UInt64 = 60
    /// Seconds.
    package var proposalTimeout = 2.0
    /// Print nothing but the result (`--json`).
    package var json = false

    package init() {}
}

package enum DemoDispute: String, CaseIterable, Codable, Sendable {
    case none, silent, cheat
}

/// Which chain `parley demo` settles on when no devchain is named.
package enum DemoChainKind: String, CaseIterable, Sendable {
    case embedded
    case evm
}
