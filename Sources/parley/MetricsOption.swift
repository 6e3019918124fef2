import ArgumentParser
import Metrics
import ParleyMetricsEndpoint
import ParleySubprocess
import ParleyTransport

/// `--metrics HOST:PORT` (`parley node`, `parley devchain`): serve `GET /metrics` in the
/// Prometheus text format (Docs/Metrics.md).
struct MetricsOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://HOST:PORT/metrics (Docs/Metrics.md); port 0 picks a free port.",
            valueName: "host:port"))
    var metrics: String?

    func validate() throws {
        if let metrics {
            do { _ = try SocketAddress(metrics) } catch { throw ValidationError("--metrics: \(error)") }
        }
    }

    /// Bootstraps the metrics system (once per process) before anything records. Call first.
    func bootstrap() -> PrometheusBackend? {
        guard metrics != nil else { return nil }
        let backend = PrometheusBackend()
        MetricsSystem.bootstrap(backend.factory)
        return backend
    }

    /// Starts the endpoint on `loop` and says where on stderr, as `command`.
    func serve(_ backend: PrometheusBackend?, loop: EventLoop, command: String) async throws -> MetricsHTTPServer? {
        guard let backend, let metrics else { return nil }
        let server = try await MetricsHTTPServer.start(on: try SocketAddress(metrics), loop: loop) { backend.render() }
        Terminal.writeError("parley \(command): metrics at http://\(server.address)/metrics\n")
        return server
    }
}
