import Foundation
import ParleyMetricsEndpoint
import ParleyTestSupport
import ParleyTransport
import Testing

@Suite("metrics endpoint") struct MetricsHTTPServerTests {
    /// A scrape far larger than the socket's send buffer arrives whole: the server closes
    /// only once every byte has been written (a plain close would drop the queued tail).
    @Test func aLargeScrapeArrivesWhole() async throws {
        let loop = try EventLoop(name: "metrics-test")
        defer { loop.shutdown() }
        let line = Array("parley_test_metric{n=\"0123456789\"} 1\n".utf8)
        let body = Array((0..<200_000).lazy.flatMap { _ in line })  // about 7.6 MB
        let server = try await MetricsHTTPServer.start(on: .loopbackIPv4(port: 0), loop: loop) { body }
        let port = server.address.port
        let answer = try await offPool { try httpGet(port: port, "/metrics") }
        await server.close()
        let parts = answer.components(separatedBy: "\r\n\r\n")
        #expect(parts.first?.hasPrefix("HTTP/1.1 200") == true, "\(parts.first ?? "")")
        #expect(parts.dropFirst().joined(separator: "\r\n\r\n").utf8.count == body.count)
    }
}
