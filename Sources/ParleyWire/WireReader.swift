/// Reads canonical encodings back, checking every length before it allocates.
///
/// Field names given to the read calls appear in errors, so a person can tell
/// which part of a message was wrong.
public struct WireReader: Sendable {
    private let bytes: [UInt8]
    public private(set) var position: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        position = 0
    }

    public var remaining: Int { bytes.count - position }

    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try need(1, field)
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        try readBigEndian(field)
    }

    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        try readBigEndian(field)
    }

    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try readBigEndian(field)
    }

    public mutating func readUInt128(_ field: String) throws(WireError) -> UInt128 {
        try readBigEndian(field)
    }

    public mutating func readBool(_ field: String) throws(WireError) -> Bool {
        switch try readUInt8(field) {
        case 0: return false
        case 1: return true
        case let other: throw .nonCanonicalBool(field: field, byte: other)
        }
    }

    public mutating func readFixed(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        try need(count, field)
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    /// Reads a `UInt32` length prefix, checks it against `limit`, then the bytes.
    public mutating func readVariable(limit: Int, _ field: String) throws(WireError) -> [UInt8] {
        let length = Int(try readUInt32(field))
        guard length <= limit else {
            throw .lengthExceedsLimit(field: field, length: length, limit: limit)
        }
        return try readFixed(length, field)
    }

    public mutating func read<T: WireDecodable>(_ type: T.Type) throws(WireError) -> T {
        try T(from: &self)
    }

    /// Succeeds only when every byte has been consumed.
    public func finish() throws(WireError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }

    private mutating func need(_ count: Int, _ field: String) throws(WireError) {
        guard count <= remaining else {
            throw .truncated(field: field, needed: count, available: remaining)
        }
    }

    private mutating func readBigEndian<T: FixedWidthInteger>(_ field: String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, field)
        var value: T = 0
        for index in position..<position + size {
            value = value << 8 | T(bytes[index])
        }
        position += size
        return value
    }
}
