/// The answer to one request head: 200 with the metrics for `GET /metrics`, otherwise
/// 400 (unreadable), 404 (another path) or 405 (another method). Always `Connection: close`.
struct HTTPResponse: Equatable {
    let status: Int
    let reason: String
    let contentType: String
    let body: [UInt8]

    /// The Prometheus text exposition format, version 0.0.4.
    static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    static func answer(_ head: [UInt8], body: () -> [UInt8]) -> HTTPResponse {
        let lineEnd = head.firstIndex(of: 13) ?? head.endIndex
        guard let line = String(validating: head[..<lineEnd], as: UTF8.self) else { return .plain(400, "Bad Request") }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0", parts[1].hasPrefix("/") else {
            return .plain(400, "Bad Request")
        }
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard path == "/metrics" else { return .plain(404, "Not Found") }
        guard parts[0] == "GET" else { return .plain(405, "Method Not Allowed") }
        return HTTPResponse(status: 200, reason: "OK", contentType: prometheusContentType, body: body())
    }

    static func plain(_ status: Int, _ reason: String) -> HTTPResponse {
        HTTPResponse(
            status: status, reason: reason, contentType: "text/plain; charset=utf-8",
            body: Array("\(status) \(reason): this endpoint serves GET /metrics\n".utf8))
    }

    var bytes: [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
        if status == 405 { head += "Allow: GET\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}
