import Histogram

/// Latencies for the reports' percentiles, in an HdrHistogram with 3 significant digits:
/// memory stays constant however many samples a run takes (no array of every sample), at
/// the price of at most 0.1% error in each reported value.
public struct LatencyRecorder: Sendable {
    /// Longer latencies are recorded as this (an hour in nanoseconds); it also fixes the
    /// histogram's size (about 270 KB).
    static let highestNanoseconds: UInt64 = 3_600_000_000_000

    private var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: highestNanoseconds, numberOfSignificantValueDigits: .three)

    public init() {}

    /// How many latencies were recorded.
    public var count: Int { Int(histogram.totalCount) }

    /// Records one latency; negative ones count as zero.
    public mutating func record(_ latency: Duration) {
        let (seconds, attoseconds) = latency.components
        guard seconds >= 0, attoseconds >= 0 else {
            histogram.record(0)
            return
        }
        let nanoseconds = seconds < Int64(Self.highestNanoseconds / 1_000_000_000)
            ? UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
            : Self.highestNanoseconds
        histogram.record(min(nanoseconds, Self.highestNanoseconds))
    }

    /// Adds another recorder's latencies to this one (per-task recorders of one run).
    public mutating func add(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
    }

    /// The latency at `fraction` of the distribution (0.99 for p99) in microseconds, 0 when
    /// nothing was recorded.
    public func micros(at fraction: Double) -> Double {
        guard histogram.totalCount > 0 else { return 0 }
        return Double(histogram.valueAtPercentile(fraction * 100)) / 1_000
    }
}
