import Foundation
import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyLocks
import ParleySettlement
import ParleySubprocess
import ParleyWire

/// Runs drills with real processes: a chain with manual time (a `parley devchain`, or the
/// local EVM with Parley's adjudicator) and one `parley node` per peer, all on loopback. `crash` is SIGKILL; `restart` recovers from
/// the journal. Keys come from the seed, so a run is repeatable.
public struct DrillRunner: Sendable {
    /// The `parley` executable to start children from.
    public var executable: String
    public var seed: UInt64
    /// How long an expectation may take to come true (watchers act on their own time).
    public var settleTimeout: Duration = .seconds(15)
    /// How long a peer waits for an answer to a proposal before counting the other as silent.
    /// On the local EVM at least ``evmProposalTimeout``: a node that has just restarted reads
    /// the chain through Python for a while, and under a loaded test run the first payment
    /// after `crash-restart-bob`'s restart missed a 1 s window.
    public var proposalTimeout: Double = 1.0
    public static let evmProposalTimeout = 3.0
    /// Where each run's files go (a fresh directory inside); removed afterwards unless `keepFiles`.
    public var workDirectory: String = "/tmp"
    public var keepFiles = false
    /// Sees each timeline entry as it happens (progress for long drills).
    public var onEntry: @Sendable (TimelineEntry) -> Void = { _ in }
    /// Where the channel settles.
    public var chain: DrillChain = .devchain

    public init(executable: String, seed: UInt64) {
        self.executable = executable
        self.seed = seed
    }

    public func run(_ drill: Drill) async -> DrillResult {
        await DrillRun(drill: drill, options: self).execute()
    }
}

/// The chain a drill settles on.
public enum DrillChain: String, Sendable, CaseIterable {
    /// A `parley devchain --manual-time` child process.
    case devchain
    /// The local EVM (`Tools/evm-devnet`, manual clock from 0) with Parley's Vyper
    /// adjudicator holding the development token; the peers open Ethereum-backend channels.
    case evm
}

/// Why a drill could not go on (set-up trouble, a child that died).
struct DrillAbort: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
