import ParleyWire

/// Names the rules a channel's app data follows (`"parley.payment/1"`).
///
/// The id is part of the channel parameters and hence of the channel id, so a
/// channel can never change its rules after opening.
public struct AppID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Printable ASCII, 1...`WireLimits.maxAppIDBytes` bytes.
    public init(_ rawValue: String) throws(WireError) {
        let utf8 = Array(rawValue.utf8)
        guard !utf8.isEmpty, utf8.count <= WireLimits.maxAppIDBytes else {
            throw .invalidValue(field: "app id", reason: "must be 1...\(WireLimits.maxAppIDBytes) bytes")
        }
        guard utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw .invalidValue(field: "app id", reason: "must be printable ASCII without spaces")
        }
        self.rawValue = rawValue
    }

    /// The plain payment channel: no app data, any conserving reallocation.
    public static let payment = AppID(known: "parley.payment/1")

    private init(known rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
}

extension AppID: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeVariable(Array(rawValue.utf8))
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readVariable(limit: WireLimits.maxAppIDBytes, "app id")
        // Printable ASCII is valid UTF-8, and AppID.init rejects anything else.
        try self.init(String(decoding: raw, as: UTF8.self))
    }
}
