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

    /// A request head past `maxRequestBytes` without its blank line is answered 400 and the
    /// connection closed: the server never buffers more than that per client.
    @Test func anOversizeRequestHeadGets400() async throws {
        let loop = try EventLoop(name: "metrics-test")
        defer { loop.shutdown() }
        let server = try await MetricsHTTPServer.start(on: .loopbackIPv4(port: 0), loop: loop) { Array("x 1\n".utf8) }
        let port = server.address.port
        let head = "GET /metrics HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: MetricsHTTPServer.maxRequestBytes)
        let answer = try await offPool { try httpExchange(port: port, head) }
        await server.close()
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(80))")
    }

    /// A client that starts a request and never finishes it (slowloris) is closed once the
    /// request deadline passes, without an answer.
    @Test func aClientThatNeverFinishesItsRequestIsClosed() async throws {
        let loop = try EventLoop(name: "metrics-test")
        defer { loop.shutdown() }
        let server = try await MetricsHTTPServer.start(on: .loopbackIPv4(port: 0), loop: loop) { Array("x 1\n".utf8) }
        let port = server.address.port
        let answer = try await offPool { () throws -> String in
            let fd = try connectedSocket(port: port, timeout: 30)
            defer { close(fd) }
            try sendAll(fd, "GET /metrics HTTP/1.1\r\n")
            return try readUntilClosed(fd)
        }
        await server.close()
        #expect(answer.isEmpty)
    }

    /// Past `maxConnections` clients at once, a new one is closed without an answer, and the
    /// endpoint serves again once they go: a flood holds at most that many connections.
    @Test func aFloodOfConnectionsIsCappedAndTheEndpointRecovers() async throws {
        let loop = try EventLoop(name: "metrics-test")
        defer { loop.shutdown() }
        let server = try await MetricsHTTPServer.start(on: .loopbackIPv4(port: 0), loop: loop) { Array("x 1\n".utf8) }
        let port = server.address.port
        let (turnedAway, afterwards) = try await offPool { () throws -> (String, String) in
            var held: [Int32] = []
            defer { held.forEach { close($0) } }
            for _ in 0..<MetricsHTTPServer.maxConnections {
                let fd = try connectedSocket(port: port, timeout: 30)
                held.append(fd)
                try sendAll(fd, "GET /metrics HTTP/1.1\r\n")  // unfinished: each keeps its slot
            }
            // Every held connection is counted once the server has answered this probe of its own
            // cap; a probe too early (accepted before the others) would get the metrics.
            var turnedAway = "not tried"
            for _ in 0..<50 {
                let fd = try connectedSocket(port: port, timeout: 30)
                turnedAway = try readUntilClosedOrAnswer(fd)
                close(fd)
                if turnedAway.isEmpty { break }
            }
            held.forEach { close($0) }
            held = []
            var afterwards = ""
            // The server frees a slot when it sees a client's close; until then a try is turned away.
            for _ in 0..<100 where !afterwards.hasPrefix("HTTP/1.1 200") {
                let fd = try connectedSocket(port: port, timeout: 30)
                afterwards = try readUntilClosedOrAnswer(fd)
                close(fd)
                if !afterwards.hasPrefix("HTTP/1.1 200") { usleep(20_000) }
            }
            return (turnedAway, afterwards)
        }
        await server.close()
        #expect(turnedAway.isEmpty, "a connection past the cap was served: \(turnedAway.prefix(80))")
        #expect(afterwards.hasPrefix("HTTP/1.1 200"), "\(afterwards.prefix(80))")
    }
}

/// Sends a whole `GET /metrics` and reads until the server closes: empty when it closed
/// without answering (a server that closes at once may reset the connection instead, or
/// refuse the send: the same "no answer").
private func readUntilClosedOrAnswer(_ fd: Int32) throws -> String {
    guard (try? sendAll(fd, "GET /metrics HTTP/1.1\r\n\r\n")) != nil else { return "" }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 { received += buffer[..<count]; continue }
        if count == 0 || errno == ECONNRESET { break }
        throw NodeCommandFailure("recv: errno \(errno) after \(received.count) bytes")
    }
    return String(decoding: received, as: UTF8.self)
}
