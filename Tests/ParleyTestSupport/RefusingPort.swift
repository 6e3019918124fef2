#if canImport(Glibc)
    import Glibc
#endif

/// A loopback TCP port bound by a socket that never listens: connecting to it is refused,
/// and while this object lives no other process of the run (a devchain, a local EVM) can
/// take the port and answer. A port closed after use gives no such guarantee.
public final class RefusingPort: @unchecked Sendable {
    public let port: UInt16
    private let descriptor: Int32

    public init() throws {
        (descriptor, port) = try boundLoopbackSocket(listening: false)
    }

    deinit { close(descriptor) }
}

/// A loopback port that accepts TCP connections (the kernel completes them) and never
/// reads or answers: a peer that hangs in the handshake.
public final class SilentListener: @unchecked Sendable {
    public let port: UInt16
    private let descriptor: Int32

    public init() throws {
        (descriptor, port) = try boundLoopbackSocket(listening: true)
    }

    deinit { close(descriptor) }
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks, listening or not.
private func boundLoopbackSocket(listening: Bool) throws -> (descriptor: Int32, port: UInt16) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    guard descriptor >= 0, bound == 0, named == 0, !listening || listen(descriptor, 16) == 0 else {
        if descriptor >= 0 { close(descriptor) }
        throw DevchainTestFailure("cannot bind a loopback port to hold")
    }
    return (descriptor, UInt16(bigEndian: address.sin_port))
}
