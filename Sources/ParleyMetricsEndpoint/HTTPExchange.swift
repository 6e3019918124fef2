import ParleyLocks
import ParleyTransport

/// One HTTP request on one connection: gathers the request head, answers it once, closes.
final class HTTPExchange: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var answered = false
    }

    private let connection: TCPConnection
    private let body: @Sendable () -> [UInt8]
    private let state = Locked(State())

    init(connection: TCPConnection, body: @escaping @Sendable () -> [UInt8]) {
        self.connection = connection
        self.body = body
    }

    func received(_ bytes: [UInt8]) {
        let head = state.withLock { state -> [UInt8]? in
            guard !state.answered else { return nil }
            state.buffer += bytes
            guard let end = Self.headEnd(state.buffer) else {
                guard state.buffer.count > MetricsHTTPServer.maxRequestBytes else { return nil }
                state.answered = true
                return []
            }
            state.answered = true
            return Array(state.buffer[..<end])
        }
        guard let head else { return }
        let response = HTTPResponse.answer(head, body: body)
        // Close only once the whole answer has left: a large scrape outgrows the socket's
        // send buffer, and a plain close would drop the tail still queued.
        connection.send(response.bytes) { [connection] _ in connection.closeWhenWritten(reason: "answered") }
    }

    /// Where the request head ends (after its blank line), if it has.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }
}
