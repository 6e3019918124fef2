import ArgumentParser
import Foundation
import ParleyBench
import ParleyCrypto
import ParleyLocks
import ParleySubprocess
import ParleyTransport

struct TransportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Measure the encrypted libuv transport.",
        subcommands: [Bench.self])
}

extension TransportCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypted round trips per second over loopback TCP.",
            discussion: """
                Starts two event loops in this process (two threads: a listener and a dialer), \
                opens N authenticated, encrypted sessions between them, and on every session at \
                once sends a small message and waits for its echo, again and again, for the \
                given time. Each message crosses the full stack both ways: framing, \
                XChaCha20-Poly1305 sealing and opening, libuv, the kernel's loopback TCP. \
                Reports round trips per second over all sessions, and the p50 and p99 of one \
                round trip. Build with `swift build -c release` for numbers worth quoting.

                Example:
                  parley transport bench --sessions 100 --seconds 5 --json
                """)

        @Option(name: .long, help: "Concurrent sessions, each with one message in flight.")
        var sessions = 1

        @Option(name: .long, help: "How long to measure, after a short warm-up.")
        var seconds = 5.0

        @Option(name: .long, help: "Bytes per message.")
        var payload = 32

        @Flag(
            name: .long,
            help: #"Print {"sessions", "payloadBytes", "roundTrips", "seconds", "roundTripsPerSecond", "p50Micros", "p99Micros", "build"} as JSON."#)
        var json = false

        func validate() throws {
            guard (1...10_000).contains(sessions) else { throw ValidationError("--sessions must be 1...10000.") }
            guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600].") }
            guard (1...SecureFrames.maxPayloadBytes - 1).contains(payload) else {
                throw ValidationError("--payload must be 1...\(SecureFrames.maxPayloadBytes - 1) bytes.")
            }
        }

        func run() async throws {
            let result: TransportBenchResult
            do {
                result = try await TransportBench(sessions: sessions, seconds: seconds, payload: payload).run()
            } catch {
                throw failure("transport bench", "\(error)")
            }
            if json {
                try printJSON(result)
            } else {
                print(result.text)
            }
        }
    }
}
