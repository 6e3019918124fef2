import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire

/// Why the daemon refused a request for a reason that is not a chain rule.
/// Travels on the wire (tag, then fields); texts are clipped to `WireLimits.maxReasonBytes`.
public enum DevchainRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// `advance` on a daemon whose clock follows blocks (`--block-time`), not requests.
    case clockNotManual(blockMilliseconds: UInt64)
    /// The request decoded, but its contents are not acceptable.
    case badRequest(String)
    /// One client may hold at most this many event subscriptions at once.
    case tooManySubscriptions(limit: UInt32)
    /// The daemon could not make the transaction or clock move durable; nothing was acknowledged.
    case storageFailed(String)
    /// A `mint` from a key that is not the daemon's operator, on a daemon started without
    /// `--allow-faucet`. Nothing changed.
    case faucetNotAllowed
    /// An `advance` from a key that is not the daemon's operator, on a daemon started without
    /// `--allow-time-travel`. Nothing changed.
    case timeTravelNotAllowed

    public var description: String {
        switch self {
        case let .clockNotManual(ms):
            return "the devchain's clock advances by itself (one block every \(ms) ms); start it with --manual-time to advance it by request"
        case let .badRequest(why): return "bad request: \(why)"
        case let .tooManySubscriptions(limit): return "a client may hold at most \(limit) subscriptions"
        case let .storageFailed(why): return "the devchain could not persist the change: \(why)"
        case .faucetNotAllowed:
            return "only the devchain's operator (the holder of its --identity key) may mint; start the daemon with --allow-faucet to let every client mint"
        case .timeTravelNotAllowed:
            return "only the devchain's operator (the holder of its --identity key) may advance its clock; start the daemon with --allow-time-travel to let every client advance it"
        }
    }
}

extension DevchainRefusal: WireCodable {
    private enum Tag: UInt8 {
        case clockNotManual = 1, badRequest, tooManySubscriptions, storageFailed, faucetNotAllowed, timeTravelNotAllowed
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .clockNotManual(ms): writer.write(Tag.clockNotManual.rawValue); writer.write(ms)
        case let .badRequest(why): writer.write(Tag.badRequest.rawValue); writer.write(text: why)
        case let .tooManySubscriptions(limit): writer.write(Tag.tooManySubscriptions.rawValue); writer.write(limit)
        case let .storageFailed(why): writer.write(Tag.storageFailed.rawValue); writer.write(text: why)
        case .faucetNotAllowed: writer.write(Tag.faucetNotAllowed.rawValue)
        case .timeTravelNotAllowed: writer.write(Tag.timeTravelNotAllowed.rawValue)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("devchain refusal")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "devchain refusal", tag: raw) }
        switch tag {
        case .clockNotManual: self = .clockNotManual(blockMilliseconds: try reader.readUInt64("block time"))
        case .badRequest: self = .badRequest(try reader.readText("reason"))
        case .tooManySubscriptions: self = .tooManySubscriptions(limit: try reader.readUInt32("limit"))
        case .storageFailed: self = .storageFailed(try reader.readText("reason"))
        case .faucetNotAllowed: self = .faucetNotAllowed
        case .timeTravelNotAllowed: self = .timeTravelNotAllowed
        }
    }
}

/// Why a devchain-only client call (`advance(by:)`, `info()`, connecting) failed.
public enum DevchainError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The daemon could not be reached, gave no answer within the client's `requestTimeout`,
    /// or the connection dropped with the request in flight (in the last two cases the
    /// caller cannot know whether a transaction or clock move was applied).
    case transport(String)
    /// The daemon refused the request.
    case refused(DevchainRefusal)
    /// Not a `devchain://HOST:PORT` address.
    case invalidAddress(String, String)
    /// Whatever answers at `address` proved `proved` in the handshake, not the `pinned` key the
    /// client dialled it with: a wrong address, a daemon started with another `--identity`, or
    /// someone impersonating the chain. No request was sent to it.
    case wrongDaemonKey(address: SocketAddress, pinned: PublicKey, proved: PublicKey)

    public var description: String {
        switch self {
        case let .transport(why): return "cannot reach the devchain: \(why)"
        case let .refused(refusal): return "the devchain refused: \(refusal)"
        case let .invalidAddress(text, why): return "\(text) is not a devchain address (devchain://HOST:PORT): \(why)"
        case let .wrongDaemonKey(address, pinned, proved):
            let hint =
                pinned == Devchain.wellKnownKey
                ? "a daemon started with --identity is dialled as devchain://pk1…@HOST:PORT, with the key it printed at start-up"
                : "check the address and the key before @ against what the daemon printed at start-up"
            return "the devchain at \(address) proved the key \(proved.humanForm), not the pinned \(pinned.humanForm): a wrong address, a daemon started with another --identity, or someone impersonating the chain; \(hint)"
        }
    }
}

extension WireWriter {
    /// u32 length, then UTF-8 clipped to `WireLimits.maxReasonBytes` at a character boundary.
    mutating func write(text: String) {
        var clipped = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= WireLimits.maxReasonBytes else { break }
            clipped.append(character)
            bytes += size
        }
        writeVariable(Array(clipped.utf8))
    }
}

extension WireReader {
    mutating func readText(_ field: String) throws(WireError) -> String {
        let raw = try readVariable(limit: WireLimits.maxReasonBytes, field)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .invalidValue(field: field, reason: "not valid UTF-8")
        }
        return text
    }
}
