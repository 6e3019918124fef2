#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParleyCrypto
import ParleyLocks
import ParleyTransport

/// Where a node keeps the addresses of the peers it dialled, so a restarted node can
/// redial the channels it opened. A convenience, not part of a channel's safety: a lost
/// entry only means waiting for the peer to dial us.
public protocol PeerAddressStore: Sendable {
    /// The addresses kept, and a description of each entry that could not be read.
    func load() -> (addresses: [PublicKey: SocketAddress], problems: [String])
    /// Replaces what is kept with `addresses`, durably.
    func save(_ addresses: [PublicKey: SocketAddress]) throws(NodeError)
}

/// Addresses kept in memory only: for a node whose store lives as long as the process (the
/// simulator keeps one across the restarts of a simulated node).
public final class MemoryPeerAddressStore: PeerAddressStore {
    private let kept = Locked<[PublicKey: SocketAddress]>([:])

    public init() {}

    public func load() -> (addresses: [PublicKey: SocketAddress], problems: [String]) { (kept.withLock { $0 }, []) }

    public func save(_ addresses: [PublicKey: SocketAddress]) throws(NodeError) { kept.withLock { $0 = addresses } }
}

/// Where each peer we dialled listens, kept next to the journal (file `peers`) so a
/// restarted node can redial the channels it opened.
///
/// One line per peer, `<64 hex digits of the key> <host:port>`, rewritten whole through a
/// temporary file, fsync and rename. The book is a convenience, not part of the channel's
/// safety: a lost entry only means we wait for the peer to dial us. Lines that do not
/// parse are skipped (and reported by `load`), never fatal.
public struct PeerBook: PeerAddressStore {
    static let fileName = "peers"

    let path: String

    public init(directory: String) {
        path = directory + "/" + Self.fileName
    }

    /// The addresses on file, and a description of each line that could not be read.
    public func load() -> (addresses: [PublicKey: SocketAddress], problems: [String]) {
        guard let text = Self.readFile(path) else { return ([:], []) }
        var addresses: [PublicKey: SocketAddress] = [:]
        var problems: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let key = try? PublicKey(hex: String(fields[0])),
                let address = try? SocketAddress(String(fields[1]))
            else {
                problems.append("\(path):\(number + 1): not `<public key hex> <host:port>`; skipped")
                continue
            }
            addresses[key] = address
        }
        return (addresses, problems)
    }

    /// Writes the whole book durably. Throws a readable message on failure.
    public func save(_ addresses: [PublicKey: SocketAddress]) throws(NodeError) {
        let text = addresses.sorted { $0.key < $1.key }.map { "\($0.key.hex) \($0.value)\n" }.joined()
        try Self.writeDurably(path, text)
    }

    /// Replaces the file at `path` with `text` through a temporary file, fsync and rename.
    static func writeDurably(_ path: String, _ text: String) throws(NodeError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .invalidParameters("cannot write \(temporary): \(Self.lastError())") }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                throw .invalidParameters("cannot write \(temporary): \(Self.lastError())")
            }
            written += n
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            throw .invalidParameters("cannot save \(path): \(Self.lastError())")
        }
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 22 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}
