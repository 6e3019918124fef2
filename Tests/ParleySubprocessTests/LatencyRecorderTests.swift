import ParleySubprocess
import Testing

/// The reports' percentiles come from `LatencyRecorder`'s histogram, not from sorted
/// samples: they must agree with the exact nearest-rank value to the histogram's precision.
@Suite("LatencyRecorder")
struct LatencyRecorderTests {
    /// 1 µs to 10 ms in 1 µs steps, in a scrambled order: p50 is 5 ms, p99 9.9 ms.
    @Test func percentilesOfAUniformDistributionAreWithinPrecision() {
        var recorder = LatencyRecorder()
        let micros = Array(1...10_000)
        for index in 0..<micros.count {
            recorder.record(.microseconds(micros[(index * 7_919) % micros.count]))
        }
        #expect(recorder.count == 10_000)
        for (fraction, exact) in [(0.50, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let reported = recorder.micros(at: fraction)
            // 3 significant digits: within 0.1% (plus the 1 ns unit).
            #expect(abs(reported - exact) <= exact * 0.001 + 0.001, "p\(fraction * 100) was \(reported) µs, exactly \(exact) µs")
        }
    }

    /// Mostly fast with a slow tail, as payments are: p50 sits in the fast mode, p99 in the tail.
    @Test func aSlowTailShowsInP99Only() {
        var recorder = LatencyRecorder()
        for _ in 0..<980 { recorder.record(.microseconds(120)) }
        for _ in 0..<20 { recorder.record(.milliseconds(3)) }
        #expect(abs(recorder.micros(at: 0.50) - 120) <= 0.12)
        #expect(abs(recorder.micros(at: 0.99) - 3_000) <= 3)
    }

    /// Per-task recorders merge into the run's; nothing recorded reads as 0.
    @Test func mergingAndEmptyRecorders() {
        #expect(LatencyRecorder().micros(at: 0.99) == 0)
        var first = LatencyRecorder()
        var second = LatencyRecorder()
        for value in 1...50 { first.record(.microseconds(value)) }
        for value in 51...100 { second.record(.microseconds(value)) }
        first.add(second)
        #expect(first.count == 100)
        #expect(abs(first.micros(at: 0.50) - 50) <= 0.05)
        // Out-of-range latencies are clamped, never a crash.
        first.record(.seconds(-1))
        first.record(.seconds(100_000))
        #expect(first.count == 102)
    }
}
