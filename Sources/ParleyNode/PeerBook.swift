import ParleyCrypto
import ParleyFiles
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
        return Self.parse(text, path: path)
    }

    /// The addresses in a peers file's text, and a description of each line that could not be
    /// read (`path` names the file in those descriptions). Later lines win for a repeated key.
    package static func parse(_ text: String, path: String) -> (addresses: [PublicKey: SocketAddress], problems: [String]) {
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
        try Self.writeDurably(path, Self.text(of: addresses))
    }

    /// The file's text for `addresses`: one `<public key hex> <host:port>` line each, by key.
    package static func text(of addresses: [PublicKey: SocketAddress]) -> String {
        addresses.sorted { $0.key < $1.key }.map { "\($0.key.hex) \($0.value)\n" }.joined()
    }

    /// Replaces the file at `path` with `text` through a temporary file, fsync and rename
    /// (`AtomicFileWrite.replace`). Throws a readable message on failure.
    static func writeDurably(_ path: String, _ text: String) throws(NodeError) {
        do {
            try AtomicFileWrite.replace(path, with: Array(text.utf8))
        } catch where error.operation == "open" || error.operation == "write" {
            throw .invalidParameters("cannot write \(error.path): \(error.reason)")
        } catch {
            throw .invalidParameters("cannot save \(path): \(error.reason)")
        }
    }

    /// The text of the file at `path` (its first 4 MiB), or nil if it cannot be read.
    static func readFile(_ path: String) -> String? {
        guard let bytes = try? FileSystemPaths.readFile(path, limit: 1 << 22) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
