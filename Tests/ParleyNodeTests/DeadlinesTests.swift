import ParleyChannel
import ParleyCrypto
import Synchronization
import ParleyTestSupport
import Testing

@testable import ParleyNode

/// The node's one timer task for every channel's proposal and turn timers. Each assertion
/// is about what fires and never about how fast: a timer must never fire early, a disarmed
/// or re-armed timer must never fire for its old arming, and every armed timer fires.
@Suite struct DeadlinesTests {
    private final class Fired: Sendable {
        let log = Mutex<[(String, ContinuousClock.Instant)]>([])
        func record(_ name: String) { log.withLock { $0.append((name, .now)) } }
        var names: [String] { log.withLock { $0.map(\.0) } }
        func when(_ name: String) -> ContinuousClock.Instant? { log.withLock { $0.first { $0.0 == name }?.1 } }
    }

    private static func channel() throws -> ChannelID {
        ChannelID(digest: try Digest(bytes: SecureRandom.bytes(32)))
    }


    @Test("a timer fires once, never before its delay")
    func firesOnceNotEarly() async throws {
        let fired = Fired()
        let deadlines = Deadlines<String>(clock: SystemClock()) { fired.record($0) }
        let a = try Self.channel()
        let b = try Self.channel()
        let armedAt = ContinuousClock.now
        deadlines.arm(.init(channel: a, kind: .proposal), after: .milliseconds(40), fire: "a")
        deadlines.arm(.init(channel: b, kind: .proposal), after: .milliseconds(120), fire: "b")
        _ = await eventually { fired.names.count >= 2 }
        #expect(fired.names == ["a", "b"])
        let whenA = try #require(fired.when("a"))
        let whenB = try #require(fired.when("b"))
        #expect(whenA - armedAt >= .milliseconds(40))
        #expect(whenB - armedAt >= .milliseconds(120))
        try await Task.sleep(for: .milliseconds(50))
        #expect(fired.names == ["a", "b"], "a timer fired twice")
        #expect(deadlines.armedCount == 0)
    }

    @Test("a disarmed timer never fires; arming a key again replaces its timer")
    func disarmAndRearm() async throws {
        let fired = Fired()
        let deadlines = Deadlines<String>(clock: SystemClock()) { fired.record($0) }
        let a = try Self.channel()
        let b = try Self.channel()
        deadlines.arm(.init(channel: a, kind: .proposal), after: .milliseconds(30), fire: "a v1")
        deadlines.arm(.init(channel: a, kind: .turn), after: .milliseconds(30), fire: "a turn")
        deadlines.arm(.init(channel: b, kind: .proposal), after: .milliseconds(30), fire: "b v1")
        deadlines.disarm(.init(channel: a, kind: .turn))
        // Re-armed later than the first arming: only the new one may fire, at its own time.
        deadlines.arm(.init(channel: a, kind: .proposal), after: .milliseconds(150), fire: "a v2")
        deadlines.disarm(.init(channel: b, kind: .proposal))
        deadlines.arm(.init(channel: b, kind: .proposal), after: .milliseconds(10), fire: "b v2")
        _ = await eventually { fired.names.count >= 2 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(fired.names == ["b v2", "a v2"])
    }

    @Test("many timers across many ticks all fire, each once, none early")
    func manyTimers() async throws {
        let fired = Fired()
        let deadlines = Deadlines<String>(clock: SystemClock(), resolution: .milliseconds(5)) { fired.record($0) }
        var armed: [String: ContinuousClock.Instant] = [:]
        for index in 0..<300 {
            let name = "t\(index)"
            armed[name] = .now
            deadlines.arm(.init(channel: try Self.channel(), kind: .proposal), after: .milliseconds(index % 97), fire: name)
        }
        _ = await eventually { fired.names.count >= 300 }
        #expect(Set(fired.names) == Set(armed.keys))
        #expect(fired.names.count == 300)
        for (name, at) in armed {
            let index = try #require(Int(name.dropFirst()))
            let when = try #require(fired.when(name))
            #expect(when - at >= .milliseconds(index % 97), "\(name) fired early")
        }
    }

    @Test("after stop nothing fires and arming does nothing")
    func stopSilencesEverything() async throws {
        let fired = Fired()
        let deadlines = Deadlines<String>(clock: SystemClock()) { fired.record($0) }
        deadlines.arm(.init(channel: try Self.channel(), kind: .proposal), after: .milliseconds(20), fire: "before")
        deadlines.stop()
        deadlines.arm(.init(channel: try Self.channel(), kind: .proposal), after: .milliseconds(20), fire: "after")
        try await Task.sleep(for: .milliseconds(120))
        #expect(fired.names.isEmpty)
        #expect(deadlines.armedCount == 0)
    }
}
