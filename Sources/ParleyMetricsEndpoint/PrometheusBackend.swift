import Metrics
import Prometheus

/// The Prometheus side of the metrics: a registry and the swift-metrics factory that fills it,
/// with buckets that suit what Parley times (fsyncs take microseconds, chain calls seconds).
public struct PrometheusBackend: Sendable {
    public let registry = PrometheusCollectorRegistry()

    public init() {}

    /// The factory to hand `MetricsSystem.bootstrap` (once per process, by the executable).
    public var factory: PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2_500),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
        ]
        return factory
    }

    /// The current values in the Prometheus text format.
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
