import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 exchange over a real socket to 127.0.0.1:`port`: sends `request` as it is
/// and returns everything the server sent before it closed (`timeout` seconds each way).
func httpExchange(port: UInt16, _ request: String, timeout: Int = 5) throws -> String {
    let fd = try connectedSocket(port: port, timeout: timeout)
    defer { close(fd) }
    try sendAll(fd, request)
    return try readUntilClosed(fd)
}

/// A blocking TCP socket connected to 127.0.0.1:`port`, its reads and writes bounded by `timeout` seconds.
func connectedSocket(port: UInt16, timeout: Int = 5) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw NodeCommandFailure("socket: errno \(errno)") }
    var limit = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw NodeCommandFailure("connect to \(port): errno \(errno)")
    }
    return fd
}

/// Sends `text` whole (MSG_NOSIGNAL: a server that closed gives an error, not SIGPIPE).
func sendAll(_ fd: Int32, _ text: String) throws {
    let bytes = Array(text.utf8)
    guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw NodeCommandFailure("send: errno \(errno)") }
}

/// Everything the server sends until it closes; a read timeout is an error.
func readUntilClosed(_ fd: Int32) throws -> String {
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 { received += buffer[..<count]; continue }
        if count == 0 { break }
        throw NodeCommandFailure("recv: errno \(errno) after \(received.count) bytes")
    }
    return String(decoding: received, as: UTF8.self)
}

/// `GET path`, as a scraper sends it.
func httpGet(port: UInt16, _ path: String) throws -> String {
    try httpExchange(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/plain\r\n\r\n")
}

/// The value of the sample `series` (name and labels exactly as exposed) in a scrape.
func sample(_ series: String, in scrape: String) -> Double? {
    for line in scrape.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}
