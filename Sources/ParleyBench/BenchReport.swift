import Foundation

/// What `parley bench --json` prints.
package struct BenchReport: Codable {
    /// One settlement backend's state signing and checking, as an update pays for them:
    /// hashing the state (BLAKE2b, or Keccak-256 and EIP-712) and signing, or hashing and
    /// verifying (Ed25519) or recovering the signer (secp256k1), on one thread.
    struct Backend: Codable {
        var backend: String
        var signPerSecond: Double
        var verifyPerSecond: Double
        /// Updates per second all cores could sign and check with this backend alone.
        var cryptoCeilingPerSecond: Double
    }

    struct Single: Codable {
        var updates: Int
        var updatesPerSecond: Double
        var p50Micros: Double
        var p99Micros: Double
        var p999Micros: Double
        var ratioToCeiling: Double
    }

    /// Many tasks paying on one channel at once (`--payers`).
    struct Concurrent: Codable {
        var payers: Int
        /// Payments that returned inside the window.
        var payments: Int
        var paymentsPerSecond: Double
        /// Updates (versions) the channel committed in the window, and per second.
        var updates: Int
        var updatesPerSecond: Double
        /// How many payments rode in one update, on average.
        var paymentsPerUpdate: Double
        /// Updates per second over the crypto ceiling (a payment that rides costs no signature).
        var ratioToCeiling: Double
        /// One payment, from `pay` to its return.
        var p50Micros: Double
        var p99Micros: Double
    }

    struct Multi: Codable {
        var channels: Int
        var updates: Int
        var updatesPerSecond: Double
        var ratioToCeiling: Double
        var p50Micros: Double
        var p99Micros: Double
        /// Opening the channels (both deposits on chain), per second.
        var opensPerSecond: Double
    }

    struct Memory: Codable {
        var channels: Int
        /// Peer RSS after the idle channels are open minus before (the baseline taken after
        /// handing free heap pages back with malloc_trim), divided by `channels`.
        var bytesPerChannel: Double
        /// The same with malloc_trim before both readings: live heap growth only.
        var trimmedBytesPerChannel: Double
        var rssBeforeBytes: Int
        var rssAfterBytes: Int
        var openSeconds: Double
        /// The peer's RSS along the run (no trim): started, after the single-channel phase,
        /// after opening the many channels, after paying on them.
        var peerRssAtStartBytes: Int
        var peerRssAfterSingleBytes: Int
        var peerRssAfterOpeningManyBytes: Int
        var peerRssAfterManyBytes: Int
    }

    /// The performance targets (Docs/Performance.md, "Targets"), as measured in this run.
    struct Targets: Codable {
        /// Many channels reach at least 70% of the crypto ceiling.
        var multiRatioAtLeast70Percent: Bool
        /// One channel, sequential payments: at least 1,400 updates/s with p99 under 2 ms.
        var singleAtLeast1400PerSecondP99Under2ms: Bool
        /// One channel, concurrent payers: at least 20,000 payments/s.
        var concurrentAtLeast20000PaymentsPerSecond: Bool
        /// An idle channel costs at most 3 KiB of the peer's resident memory (after malloc_trim).
        var memoryAtMost3KiBPerChannel: Bool

        init(_ results: BenchRun.ChannelResults) {
            multiRatioAtLeast70Percent = results.multi.ratioToCeiling >= 0.7
            singleAtLeast1400PerSecondP99Under2ms = results.single.updatesPerSecond >= 1_400 && results.single.p99Micros < 2_000
            concurrentAtLeast20000PaymentsPerSecond = results.concurrent.paymentsPerSecond >= 20_000
            memoryAtMost3KiBPerChannel = results.memory.trimmedBytesPerChannel <= 3_072
        }
    }

    var cryptoCeilingPerSecond: Double
    var signPerSecond: Double
    var verifyPerSecond: Double
    var cores: Int
    /// Each settlement backend's state signing and checking (the channel phases run on Ed25519).
    var backends: [Backend]
    var fsyncMicrosP50: Double
    var fsyncMicrosP99: Double
    var single: Single
    var concurrent: Concurrent
    var multi: Multi
    var memory: Memory
    var targets: Targets
    var durability: String
    /// The backend the channel phases ran on.
    var channelBackend: String
    var build: String
    /// --seconds: how long each throughput phase measured.
    var seconds: Double
    /// The whole run, start to finish.
    var totalSeconds: Double

    /// The run and the targets, after the per-phase lines.
    package var verdict: String {
        func yes(_ met: Bool) -> String { met ? "met" : "NOT met" }
        return """
            \(build) build, durability \(durability), \(channelBackend) channels, \(cores) cores, \(String(format: "%.1f", seconds)) s per phase, \
            \(String(format: "%.1f", totalSeconds)) s in all
            targets: many channels ≥ 70% of the ceiling: \(yes(targets.multiRatioAtLeast70Percent)); \
            single ≥ 1,400/s with p99 < 2 ms: \(yes(targets.singleAtLeast1400PerSecondP99Under2ms)); \
            concurrent payers ≥ 20,000 payments/s: \(yes(targets.concurrentAtLeast20000PaymentsPerSecond)); \
            ≤ 3 KiB per idle channel (after malloc_trim): \(yes(targets.memoryAtMost3KiBPerChannel))
            """
    }
}
