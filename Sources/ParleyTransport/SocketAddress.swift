import CLibUV

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address and TCP port, written `127.0.0.1:9735` or `[::1]:9735`.
///
/// Only numeric addresses: Parley never resolves host names, so dialing
/// never blocks on DNS. The host is kept in canonical form (`[0:0::1]:80`
/// reads back as `[::1]:80`). Port 0 asks the OS to choose when listening;
/// the listener's `localAddress` reports the port it got.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6
    }

    public let family: Family
    /// The numeric host without brackets, e.g. `127.0.0.1` or `::1`.
    public let host: String
    public let port: UInt16

    /// Parses `a.b.c.d:port` or `[ipv6]:port`.
    public init(_ text: String) throws(SocketAddressError) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .invalidHost(text) }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .missingPort(text) }
            let port = try SocketAddress.parsePort(String(rest.dropFirst()), in: text)
            guard host.contains(":") else { throw .invalidHost(text) }
            try self.init(host: host, port: port)
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .missingPort(text) }
            let host = String(text[..<colon])
            guard !host.contains(":") else { throw .invalidHost(text) }
            let port = try SocketAddress.parsePort(String(text[text.index(after: colon)...]), in: text)
            try self.init(host: host, port: port)
        }
    }

    /// A numeric IPv4 or IPv6 host (no brackets, no zone) and a port.
    public init(host: String, port: UInt16) throws(SocketAddressError) {
        guard !host.contains("%") else { throw .invalidHost(host) }
        var ipv4 = sockaddr_in()
        var ipv6 = sockaddr_in6()
        if !host.contains(":"), uv_ip4_addr(host, Int32(port), &ipv4) == 0 {
            guard let canonical = SocketAddress.name(ofIPv4: &ipv4) else { throw .invalidHost(host) }
            self.init(family: .ipv4, host: canonical, port: port)
        } else if host.contains(":"), uv_ip6_addr(host, Int32(port), &ipv6) == 0 {
            guard let canonical = SocketAddress.name(ofIPv6: &ipv6) else { throw .invalidHost(host) }
            self.init(family: .ipv6, host: canonical, port: port)
        } else {
            throw .invalidHost(host)
        }
    }

    private init(family: Family, host: String, port: UInt16) {
        self.family = family
        self.host = host
        self.port = port
    }

    /// `127.0.0.1:port`.
    public static func loopbackIPv4(port: UInt16) -> SocketAddress {
        SocketAddress(family: .ipv4, host: "127.0.0.1", port: port)
    }

    /// `[::1]:port`.
    public static func loopbackIPv6(port: UInt16) -> SocketAddress {
        SocketAddress(family: .ipv6, host: "::1", port: port)
    }

    public var description: String {
        switch family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        }
    }

    /// The same host with another port.
    public func with(port: UInt16) -> SocketAddress {
        SocketAddress(family: family, host: host, port: port)
    }

    private static func parsePort(_ digits: String, in text: String) throws(SocketAddressError) -> UInt16 {
        guard !digits.isEmpty else { throw .missingPort(text) }
        guard digits.utf8.count <= 5, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = UInt16(digits) else { throw .invalidPort(text) }
        return value
    }

    // MARK: - sockaddr conversions

    /// Calls `body` with this address as a `sockaddr`.
    func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>) -> Result) -> Result {
        switch family {
        case .ipv4:
            var address = sockaddr_in()
            uv_ip4_addr(host, Int32(port), &address)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body)
            }
        case .ipv6:
            var address = sockaddr_in6()
            uv_ip6_addr(host, Int32(port), &address)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body)
            }
        }
    }

    /// Reads an address the kernel filled in (getsockname/getpeername); nil for other families.
    init?(storage: inout sockaddr_storage) {
        switch Int32(storage.ss_family) {
        case AF_INET:
            let decoded: SocketAddress? = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    SocketAddress.name(ofIPv4: &address.pointee).map {
                        SocketAddress(family: .ipv4, host: $0, port: UInt16(bigEndian: address.pointee.sin_port))
                    }
                }
            }
            guard let decoded else { return nil }
            self = decoded
        case AF_INET6:
            let decoded: SocketAddress? = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    SocketAddress.name(ofIPv6: &address.pointee).map {
                        SocketAddress(family: .ipv6, host: $0, port: UInt16(bigEndian: address.pointee.sin6_port))
                    }
                }
            }
            guard let decoded else { return nil }
            self = decoded
        default:
            return nil
        }
    }

    /// The address a TCP handle is bound to.
    static func local(of handle: UnsafeMutablePointer<uv_tcp_t>) -> SocketAddress? {
        read { uv_tcp_getsockname(handle, $0, $1) }
    }

    /// The address of a connected TCP handle's peer.
    static func peer(of handle: UnsafeMutablePointer<uv_tcp_t>) -> SocketAddress? {
        read { uv_tcp_getpeername(handle, $0, $1) }
    }

    private static func read(
        _ query: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<Int32>) -> Int32
    ) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { query($0, &length) }
        }
        guard status == 0 else { return nil }
        return SocketAddress(storage: &storage)
    }

    private static func name(ofIPv4 address: inout sockaddr_in) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        guard uv_ip4_name(&address, &buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func name(ofIPv6 address: inout sockaddr_in6) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        guard uv_ip6_name(&address, &buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why a string is not a `SocketAddress`.
public enum SocketAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No `:port` after the host.
    case missingPort(String)
    /// The port is not a decimal number from 0 to 65535.
    case invalidPort(String)
    /// The host is not a numeric IPv4 address or a bracketed IPv6 address
    /// (names such as `localhost` are not resolved).
    case invalidHost(String)

    public var description: String {
        switch self {
        case let .missingPort(text):
            return "\"\(text)\" has no port; write 127.0.0.1:9735 or [::1]:9735"
        case let .invalidPort(text):
            return "\"\(text)\" has a port that is not a number from 0 to 65535"
        case let .invalidHost(text):
            return "\"\(text)\" is not a numeric IPv4 address or a bracketed IPv6 address (host names are not resolved)"
        }
    }
}
