import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyFiles
import ParleyJournal
import ParleyLocks
import ParleyNode
import ParleySubprocess
import ParleyTransport
import ParleyWire
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

package struct BenchFailure: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}

/// One `parley bench` run. See `BenchCommand` and Docs/Performance.md.
package struct BenchRun {
    let seconds: Double
    /// Tasks paying at once on one channel in the concurrent phase.
    let payers: Int
    let channels: Int
    let idleChannels: Int
    let durability: Durability
    /// The channel phases' settlement backend; on Ethereum the devchain's domain names a contract.
    let backend: ChannelBackendID
    /// Print a line per phase on stdout (not with --json).
    let narrate: Bool

    package init(
        seconds: Double, payers: Int = 64, channels: Int, idleChannels: Int, durability: Durability, backend: ChannelBackendID, narrate: Bool
    ) {
        self.seconds = seconds
        self.payers = payers
        self.channels = channels
        self.idleChannels = idleChannels
        self.durability = durability
        self.backend = backend
        self.narrate = narrate
    }

    /// Each side's deposit in every channel: more than any run pays in one direction.
    static let deposit: Amount = 1_000_000_000
    /// Throughput phases run this long before they count.
    static let warmUp: Duration = .milliseconds(300)
    /// Opens in flight at once.
    static let openWindow = 100

    private func say(_ line: String) {
        if narrate { print(line) }
    }

    private var measured: Duration { .nanoseconds(Int64(seconds * 1e9)) }

    package func run() async throws -> BenchReport {
        let started = ContinuousClock.now
        let progress = BenchPhaseProgress()
        let progressTask = isatty(STDERR_FILENO) != 0 ? Task { await progress.show() } : nil
        defer { progressTask?.cancel() }

        // 1. Crypto ceiling, before anything else runs.
        progress.set("crypto: signing and verifying for 2 s")
        let crypto = Self.measureCrypto(for: .seconds(1))
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let ceiling = Double(cores) / (2 / crypto.sign + 2 / crypto.verify)
        say(
            "crypto ceiling: \(Int(ceiling)) updates/s on \(cores) cores (sign \(Int(crypto.sign))/s, verify \(Int(crypto.verify))/s, one thread)"
        )
        progress.set("crypto: each settlement backend")
        let backends = ChannelBackendID.allCases.map { backend in
            let rates = Self.measureBackend(backend, for: .milliseconds(500))
            let ceiling = Double(cores) / (2 / rates.sign + 2 / rates.verify)
            say(
                "backend \(backend): sign \(Int(rates.sign))/s, verify \(Int(rates.verify))/s per thread, state hashing included; "
                    + "ceiling \(Int(ceiling)) updates/s")
            return BenchReport.Backend(
                backend: backend.description, signPerSecond: Reporting.rounded(rates.sign, digits: 1),
                verifyPerSecond: Reporting.rounded(rates.verify, digits: 1), cryptoCeilingPerSecond: Reporting.rounded(ceiling, digits: 1))
        }

        // The channel phases' ratios are to the ceiling of the backend they run on: Ed25519's
        // is the one above; Ethereum's is its state signing and recovery's.
        let phaseCeiling = backend == .ed25519
            ? ceiling : backends.first { $0.backend == backend.description }?.cryptoCeilingPerSecond ?? ceiling
        if backend != .ed25519 { say("channel phases on the \(backend) backend: ratios are to its ceiling, \(Int(phaseCeiling)) updates/s") }

        var template = Array("/tmp/parley-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchFailure("cannot make a temporary directory under /tmp") }
        let root = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: root) }

        // 2. fsync of a small append, in the directory the journals live in.
        progress.set("fsync: 200 appends")
        let fsync = try Self.measureFsync(path: root + "/fsync-probe")
        say("fsync: p50 \(Reporting.rounded(fsync.p50, digits: 1)) µs, p99 \(Reporting.rounded(fsync.p99, digits: 1)) µs (100-byte append + fsync, \(root))")

        // Chain, peer process and our node.
        progress.set("starting the devchain, the peer process and our node")
        let chainLoop = try EventLoop(name: "bench-devchain")
        defer { chainLoop.shutdown() }
        var configuration = DevchainServer.Configuration(
            listen: .loopbackIPv4(port: 0), dataDirectory: root + "/devchain", challengeDefault: 3_600, timeMode: .manual)
        if backend == .ethereum {
            // Ethereum channels need an adjudicator address in their domain; any fixed one does here.
            configuration.domain = try SettlementDomain(
                chainID: SettlementDomain.devchainDefault.chainID, contract: [UInt8](repeating: 0x5f, count: 20))
        }
        let devchain = try await DevchainServer.start(configuration, loop: chainLoop)
        let chainURL = "devchain://\(devchain.address)"
        let total = Amount(1 + channels + idleChannels)
        let peer = try PipedChild(readerName: "bench-peer-stdout", arguments: [
            "bench", "peer", "--chain", chainURL, "--journal", root + "/peer", "--mint", "\(total * Self.deposit)",
            "--durability", durability.rawValue,
        ])
        var peerLines = peer.lines.makeAsyncIterator()
        let nodeLoop = try EventLoop(name: "bench-node")
        defer { nodeLoop.shutdown() }
        let key = SigningKey()
        var node: Node?
        var chain: DevchainClient?
        do {
            guard let first = await peerLines.next() else { throw BenchFailure("the peer process exited before it was ready") }
            guard let ready = try? JSONDecoder().decode(BenchPeerLine.self, from: Data(first.utf8)) else {
                throw BenchFailure("unexpected first line from the peer: \(first)")
            }
            let peerKey = try PublicKey(hex: ready.key)
            let peerSigner: SettlementAddress? = switch backend {
            case .ed25519: nil
            case .ethereum: .ethereum(try EthereumAddress(hex: ready.ethereumAddress))
            }
            let peerAddress = try SocketAddress(ready.address)
            let client = try await DevchainClient.connect(to: chainURL, identity: key, loop: nodeLoop)
            chain = client
            _ = try await client.mint(total * Self.deposit, to: key.publicKey)
            let local = try await Node(
                identity: key, listen: nil, journal: root + "/local", settlement: client, policy: BenchPolicy.node(durability),
                logger: Logger(label: "parley.bench") { _ in SwiftLogNoOpLogHandler() }, loop: nodeLoop)
            node = local
            let result = try await measureChannels(
                node: local, peer: peer, peerLines: &peerLines, peerKey: peerKey, peerSigner: peerSigner, peerAddress: peerAddress,
                ceiling: phaseCeiling,
                progress: progress)
            progress.set("shutting down")
            await peer.stop()
            await local.shutDown()
            await client.close()
            await devchain.shutdown()
            progressTask?.cancel()
            await progressTask?.value
            let totalSeconds = Reporting.seconds(ContinuousClock.now - started)
            return BenchReport(
                cryptoCeilingPerSecond: Reporting.rounded(phaseCeiling, digits: 1), signPerSecond: Reporting.rounded(crypto.sign, digits: 1),
                verifyPerSecond: Reporting.rounded(crypto.verify, digits: 1), cores: cores, backends: backends,
                fsyncMicrosP50: Reporting.rounded(fsync.p50, digits: 1), fsyncMicrosP99: Reporting.rounded(fsync.p99, digits: 1),
                single: result.single, concurrent: result.concurrent, multi: result.multi, memory: result.memory,
                targets: BenchReport.Targets(result),
                durability: durability.rawValue, channelBackend: backend.description, build: Reporting.buildConfiguration, seconds: seconds,
                totalSeconds: Reporting.rounded(totalSeconds, digits: 1))
        } catch {
            await peer.kill()
            await node?.shutDown()
            await chain?.close()
            await devchain.shutdown()
            throw error
        }
    }

    struct ChannelResults {
        var single: BenchReport.Single
        var concurrent: BenchReport.Concurrent
        var multi: BenchReport.Multi
        var memory: BenchReport.Memory
    }

    /// Phases 3 to 5, between our node and the peer process.
    private func measureChannels(
        node: Node, peer: PipedChild, peerLines: inout PipedChild.Lines.Iterator, peerKey: PublicKey, peerSigner: SettlementAddress?,
        peerAddress: SocketAddress, ceiling: Double, progress: BenchPhaseProgress
    ) async throws -> ChannelResults {
        let atStart = try await peerStats(peer, &peerLines, command: "stats", funded: 0)
        // 3. One channel, one payment at a time.
        progress.set("single channel: opening")
        let single = try await node.open(
            with: peerKey, at: peerAddress, deposit: Self.deposit, theirs: Self.deposit, peerSigner: peerSigner)
        progress.set("single channel: paying for \(String(format: "%.1f", seconds)) s", counting: true)
        let warmEnd = ContinuousClock.now + Self.warmUp
        while ContinuousClock.now < warmEnd { try await single.pay(1) }
        var latencies = LatencyRecorder()
        let singleStart = ContinuousClock.now
        let singleEnd = singleStart + measured
        var now = singleStart
        while now < singleEnd {
            let before = now
            try await single.pay(1)
            now = ContinuousClock.now
            latencies.record(now - before)
            progress.tick()
        }
        let singleSeconds = Reporting.seconds(now - singleStart)
        let singleRate = Double(latencies.count) / singleSeconds
        let singleResult = BenchReport.Single(
            updates: latencies.count, updatesPerSecond: Reporting.rounded(singleRate, digits: 1),
            p50Micros: Reporting.rounded(latencies.micros(at: 0.50), digits: 1), p99Micros: Reporting.rounded(latencies.micros(at: 0.99), digits: 1),
            p999Micros: Reporting.rounded(latencies.micros(at: 0.999), digits: 1), ratioToCeiling: Reporting.rounded(singleRate / ceiling, digits: 4))
        say(
            "single channel: \(Int(singleRate)) updates/s, p50 \(singleResult.p50Micros) µs, p99 \(singleResult.p99Micros) µs, "
                + "p99.9 \(singleResult.p999Micros) µs (\(latencies.count) payments, \(durability.rawValue))")

        // 3b. The same channel, many payers at once: their payments coalesce into updates.
        let concurrent = try await measureConcurrentPayers(on: single, ceiling: ceiling, progress: progress)

        let afterSingle = try await peerStats(peer, &peerLines, command: "stats", funded: 0)
        // 4. Many channels, a payment in flight on every one.
        progress.set("many channels: opening \(channels)", counting: true)
        let openStart = ContinuousClock.now
        let many = try await Self.open(
            channels, node: node, peerKey: peerKey, peerSigner: peerSigner, peerAddress: peerAddress, progress: progress)
        let openSeconds = Reporting.seconds(ContinuousClock.now - openStart)
        let afterOpen = try await peerStats(peer, &peerLines, command: "stats", funded: 0)
        progress.set("many channels: \(channels) paying for \(String(format: "%.1f", seconds)) s", counting: true)
        let multiWarmEnd = ContinuousClock.now + Self.warmUp
        let multiEnd = multiWarmEnd + measured
        // One recorder for every channel: a histogram each would cost far more memory.
        let multiLatencies = Locked(LatencyRecorder())
        let multiCount = try await Self.payBackToBack(
            on: many, warmEnd: multiWarmEnd, end: multiEnd, latencies: multiLatencies, progress: progress)
        let multiRecorded = multiLatencies.withLock { $0 }
        let multiRate = Double(multiCount) / seconds
        let multiResult = BenchReport.Multi(
            channels: channels, updates: multiCount, updatesPerSecond: Reporting.rounded(multiRate, digits: 1),
            ratioToCeiling: Reporting.rounded(multiRate / ceiling, digits: 4),
            p50Micros: Reporting.rounded(multiRecorded.micros(at: 0.50), digits: 1),
            p99Micros: Reporting.rounded(multiRecorded.micros(at: 0.99), digits: 1),
            opensPerSecond: Reporting.rounded(Double(channels) / openSeconds, digits: 1))
        say(
            "\(channels) channels: \(Int(multiRate)) updates/s = \(String(format: "%.1f", multiRate / ceiling * 100))% of the crypto ceiling, "
                + "p50 \(multiResult.p50Micros) µs, p99 \(multiResult.p99Micros) µs (opened at \(Int(multiResult.opensPerSecond))/s)")

        // 5. Memory per idle channel, in the peer process.
        progress.set("memory: measuring the peer")
        let afterMulti = try await peerStats(peer, &peerLines, command: "stats", funded: 0)
        let expected = 1 + channels
        let before = try await peerStats(peer, &peerLines, command: "trim", funded: expected)
        progress.set("memory: opening \(idleChannels) idle channels", counting: true)
        let idleStart = ContinuousClock.now
        _ = try await Self.open(
            idleChannels, node: node, peerKey: peerKey, peerSigner: peerSigner, peerAddress: peerAddress, progress: progress)
        progress.set("memory: waiting for the peer to see every channel funded")
        let after = try await peerStats(peer, &peerLines, command: "stats", funded: expected + idleChannels)
        let idleSeconds = Reporting.seconds(ContinuousClock.now - idleStart)
        let memory = BenchReport.Memory(
            channels: idleChannels,
            bytesPerChannel: Reporting.rounded(Double(after.rssBytes - before.rssBytes) / Double(idleChannels), digits: 0),
            trimmedBytesPerChannel: Reporting.rounded(Double(after.trimmedRssBytes - before.trimmedRssBytes) / Double(idleChannels), digits: 0),
            rssBeforeBytes: before.rssBytes, rssAfterBytes: after.rssBytes, openSeconds: Reporting.rounded(idleSeconds, digits: 2),
            peerRssAtStartBytes: atStart.rssBytes, peerRssAfterSingleBytes: afterSingle.rssBytes,
            peerRssAfterOpeningManyBytes: afterOpen.rssBytes, peerRssAfterManyBytes: afterMulti.rssBytes)
        say(
            "memory: \(Int(memory.bytesPerChannel)) bytes per idle channel in the peer (\(Int(memory.trimmedBytesPerChannel)) after malloc_trim; "
                + "RSS \(before.rssBytes / 1024) KiB → \(after.rssBytes / 1024) KiB, \(idleChannels) channels opened in \(String(format: "%.1f", idleSeconds)) s)"
        )
        return ChannelResults(single: singleResult, concurrent: concurrent, multi: multiResult, memory: memory)
    }

    /// One task per entry of `channels` (a channel may repeat: several payers on it) paying 1
    /// back to back until `end`. Returns the payments that completed inside the window
    /// (`warmEnd`...`end`, the throughput count) and records the latency of those wholly
    /// inside it; `counted` sees the state each counted payment returned.
    private static func payBackToBack(
        on channels: [Channel], warmEnd: ContinuousClock.Instant, end: ContinuousClock.Instant,
        latencies: Locked<LatencyRecorder>, progress: BenchPhaseProgress,
        counted: @escaping @Sendable (SignedState) -> Void = { _ in }
    ) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for channel in channels {
                group.addTask {
                    var completed = 0
                    while true {
                        let before = ContinuousClock.now
                        guard before < end else { return completed }
                        let signed = try await channel.pay(1)
                        let after = ContinuousClock.now
                        // Throughput: completions inside the window. Latency: payments wholly inside it.
                        if after >= warmEnd, after <= end {
                            completed += 1
                            progress.tick()
                            counted(signed)
                            if before >= warmEnd { latencies.withLock { $0.record(after - before) } }
                        }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }

    /// `payers` tasks paying 1 on `channel` back to back for the measured window: payments
    /// that wait together ride in one update, so the channel carries many more payments per
    /// second than it makes updates.
    private func measureConcurrentPayers(
        on channel: Channel, ceiling: Double, progress: BenchPhaseProgress
    ) async throws -> BenchReport.Concurrent {
        progress.set("single channel: \(payers) payers for \(String(format: "%.1f", seconds)) s", counting: true)
        let warmEnd = ContinuousClock.now + Self.warmUp
        let end = warmEnd + measured
        let latencies = Locked(LatencyRecorder())
        // Versions the channel moved during the window: the updates that carried the payments.
        let versions = Locked<(start: UInt64?, end: UInt64)>((nil, 0))
        let counted = try await Self.payBackToBack(
            on: Array(repeating: channel, count: payers), warmEnd: warmEnd, end: end, latencies: latencies, progress: progress
        ) { signed in
            versions.withLock {
                // The first commit inside the window marks where the count starts.
                if $0.start == nil { $0.start = signed.version - 1 }
                $0.end = max($0.end, signed.version)
            }
        }
        let recorded = latencies.withLock { $0 }
        let (first, last) = versions.withLock { ($0.start ?? $0.end, $0.end) }
        let updates = Int(last - first)
        let rate = Double(counted) / seconds
        let result = BenchReport.Concurrent(
            payers: payers, payments: counted, paymentsPerSecond: Reporting.rounded(rate, digits: 1), updates: updates,
            updatesPerSecond: Reporting.rounded(Double(updates) / seconds, digits: 1),
            paymentsPerUpdate: Reporting.rounded(updates > 0 ? Double(counted) / Double(updates) : 0, digits: 2),
            ratioToCeiling: Reporting.rounded(Double(updates) / seconds / ceiling, digits: 4),
            p50Micros: Reporting.rounded(recorded.micros(at: 0.50), digits: 1),
            p99Micros: Reporting.rounded(recorded.micros(at: 0.99), digits: 1))
        say(
            "\(payers) payers on one channel: \(Int(rate)) payments/s in \(Int(result.updatesPerSecond)) updates/s "
                + "(\(result.paymentsPerUpdate) payments per update), p50 \(result.p50Micros) µs, p99 \(result.p99Micros) µs")
        return result
    }

    /// Asks the peer for its memory once it holds `funded` funded channels (polling, up to 60 s).
    private func peerStats(
        _ peer: PipedChild, _ lines: inout PipedChild.Lines.Iterator, command: String, funded: Int
    ) async throws -> BenchPeerStats {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            try? peer.send(command)
            guard let line = await lines.next() else { throw BenchFailure("the peer process exited") }
            guard let stats = try? JSONDecoder().decode(BenchPeerStats.self, from: Data(line.utf8)) else {
                throw BenchFailure("unexpected line from the peer: \(line)")
            }
            if stats.funded >= funded { return stats }
            guard ContinuousClock.now < deadline else {
                throw BenchFailure("the peer holds \(stats.funded) funded channels, \(funded) expected, after 60 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Opens `count` funded channels to the peer, `openWindow` at a time.
    private static func open(
        _ count: Int, node: Node, peerKey: PublicKey, peerSigner: SettlementAddress?, peerAddress: SocketAddress,
        progress: BenchPhaseProgress
    ) async throws -> [Channel] {
        try await withThrowingTaskGroup(of: Channel.self) { group in
            var channels: [Channel] = []
            channels.reserveCapacity(count)
            var started = 0
            while started < min(count, openWindow) {
                group.addTask {
                    try await node.open(
                        with: peerKey, at: peerAddress, deposit: deposit, theirs: deposit, peerSigner: peerSigner,
                        timeout: .seconds(120))
                }
                started += 1
            }
            while let channel = try await group.next() {
                channels.append(channel)
                progress.tick()
                if started < count {
                    group.addTask {
                        try await node.open(
                            with: peerKey, at: peerAddress, deposit: deposit, theirs: deposit, peerSigner: peerSigner,
                        timeout: .seconds(120))
                    }
                    started += 1
                }
            }
            return channels
        }
    }

    /// Signs and verifies a 150-byte message for `duration` each; rates per second.
    static func measureCrypto(for duration: Duration) -> (sign: Double, verify: Double) {
        let key = SigningKey()
        var message = [UInt8](repeating: 0, count: 150)
        for index in message.indices { message[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        let batch = 32
        var signature = key.sign(message)
        let signs = rate(for: duration, batch: batch) { round in
            message[0] = UInt8(truncatingIfNeeded: round)
            signature = key.sign(message)
        }
        message[0] = UInt8(truncatingIfNeeded: batch - 1)
        let publicKey = key.publicKey
        var valid = 0
        let verifies = rate(for: duration, batch: batch) { _ in
            if publicKey.isValidSignature(signature, for: message) { valid += 1 }
        }
        precondition(valid == verifies.calls, "a valid signature failed to verify")
        return (signs.perSecond, verifies.perSecond)
    }

    /// Signing a state and checking its signature through the channel params, as the engine
    /// does on `backend`: the digest (BLAKE2b, or Keccak-256 and EIP-712) is part of each.
    static func measureBackend(_ backend: ChannelBackendID, for duration: Duration) -> (sign: Double, verify: Double) {
        let identities = [SigningKey(), SigningKey()]
        let signers = identities.map { $0.stateSigner(for: backend) }
        // Fixed valid inputs: two distinct keys, a 32-byte nonce, a 20-byte contract on Ethereum.
        guard let domain = try? SettlementDomain(chainID: 1337, contract: backend == .ethereum ? [UInt8](repeating: 0x5f, count: 20) : []),
              let params = try? ChannelParams(
                  participants: identities.map(\.publicKey),
                  signers: backend == .ed25519 ? nil : signers.map(\.settlementAddress),
                  nonce: [UInt8](repeating: 7, count: ChannelParams.nonceBytes), domain: domain)
        else { return (0, 0) }
        var state = ChannelState(channelID: params.id, version: 1, allocation: Allocation(500, 500))
        var signature = params.sign(state, with: signers[0])
        let signs = rate(for: duration, batch: 16) { _ in
            state.version += 1
            signature = params.sign(state, with: signers[0])
        }
        var valid = 0
        let verifies = rate(for: duration, batch: 16) { _ in
            if params.isSigned(state, by: .first, with: signature) { valid += 1 }
        }
        precondition(valid == verifies.calls, "a valid \(backend) signature failed to verify")
        return (signs.perSecond, verifies.perSecond)
    }

    /// Calls `body(round)` in batches of `batch` (round 0..<batch) until `duration` has
    /// passed, reading the clock once per batch: calls per second, and how many were made.
    private static func rate(for duration: Duration, batch: Int, _ body: (Int) -> Void) -> (perSecond: Double, calls: Int) {
        var calls = 0
        let start = ContinuousClock.now
        var now = start
        repeat {
            for round in 0..<batch { body(round) }
            calls += batch
            now = ContinuousClock.now
        } while now - start < duration
        return (Double(calls) / Reporting.seconds(now - start), calls)
    }

    /// 200 appends of 100 bytes to a fresh file at `path`, each followed by fsync (after 10
    /// unmeasured ones); p50 and p99 in microseconds.
    static func measureFsync(path: String, appends: Int = 200, bytes: Int = 100) throws -> (p50: Double, p99: Double) {
        let file: DurableFile
        do {
            file = try DurableFile.open(path, .writeOnly, options: [.create, .append])
        } catch {
            throw BenchFailure("cannot create \(path): \(error.reason)")
        }
        defer {
            file.close()
            try? FileSystemPaths.remove(path)
        }
        let record = [UInt8](repeating: 0x5a, count: bytes)
        var latencies = LatencyRecorder()
        for index in 0..<(appends + 10) {
            let before = ContinuousClock.now
            do {
                try file.writeAll(record)
                try file.sync()
            } catch {
                throw BenchFailure("append + fsync to \(path) failed: \(error.reason)")
            }
            if index >= 10 { latencies.record(ContinuousClock.now - before) }
        }
        return (latencies.micros(at: 0.50), latencies.micros(at: 0.99))
    }
}

/// The phase and its counter, drawn on stderr while a terminal watches.
final class BenchPhaseProgress: Sendable {
    private let phase = Locked<(text: String, counting: Bool)>(("", false))
    private let count = Atomic<Int>(0)

    /// A new phase; with `counting`, its count (from 0) is shown after the text.
    func set(_ text: String, counting: Bool = false) {
        count.store(0, ordering: .relaxed)
        phase.withLock { $0 = (text, counting) }
    }

    func tick() { count.add(1, ordering: .relaxed) }

    func show() async {
        await Terminal.showProgressLine(every: .milliseconds(250)) {
            let (text, counting) = phase.withLock { $0 }
            guard !text.isEmpty else { return nil }
            return "  bench: " + text + (counting ? ": \(count.load(ordering: .relaxed))" : "")
        }
    }
}
