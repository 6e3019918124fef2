/// Why a byte string is not a canonical encoding of the value it was decoded as.
///
/// Every decoding failure is one of these; decoding never traps, never
/// allocates more than a named limit allows, and never accepts trailing bytes.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended while `field` still needed `needed` bytes.
    case truncated(field: String, needed: Int, available: Int)
    /// A length or count prefix is larger than the named limit for its field.
    case lengthExceedsLimit(field: String, length: Int, limit: Int)
    /// A boolean byte other than 0x00 or 0x01 (two encodings of one value would break signatures).
    case nonCanonicalBool(field: String, byte: UInt8)
    /// A type or enum tag this version of Parley does not know.
    case unknownTag(field: String, tag: UInt8)
    /// The encoding format version is not one this build speaks.
    case unsupportedVersion(got: UInt8, supported: UInt8)
    /// A complete value was decoded but bytes were left over.
    case trailingBytes(count: Int)
    /// The bytes are well-formed but describe a value that cannot exist.
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(field, needed, available):
            return "encoding ends early: \(field) needs \(needed) more byte(s), only \(available) left"
        case let .lengthExceedsLimit(field, length, limit):
            return "\(field) claims \(length) item(s)/byte(s), more than the limit of \(limit)"
        case let .nonCanonicalBool(field, byte):
            return "\(field) must be 0x00 or 0x01, found 0x\(String(byte, radix: 16))"
        case let .unknownTag(field, tag):
            return "unknown \(field) tag \(tag)"
        case let .unsupportedVersion(got, supported):
            return "encoding version \(got) is not supported (this build speaks version \(supported))"
        case let .trailingBytes(count):
            return "\(count) unexpected byte(s) after the end of the value"
        case let .invalidValue(field, reason):
            return "invalid \(field): \(reason)"
        }
    }
}
