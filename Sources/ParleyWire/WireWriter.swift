/// Appends the canonical encoding of values to a byte buffer.
///
/// The encoding is big-endian fixed-width integers, fixed-size byte strings
/// without a prefix, variable byte strings with a `UInt32` length prefix, and
/// booleans as exactly 0x00 or 0x01. There is one encoding per value, so two
/// peers that encode the same value produce the same bytes to sign.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]

    /// Capacity `wireBytes` reserves: a journal record or message carrying a signed state
    /// with both signatures (about 230 bytes with empty app data) fits without the buffer
    /// growing, which would cost a second allocation and a copy.
    public static let typicalEncodingBytes = 256

    public init(reservingCapacity capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) {
        bytes.append(value)
    }

    public mutating func write(_ value: UInt16) {
        appendBigEndian(value)
    }

    public mutating func write(_ value: UInt32) {
        appendBigEndian(value)
    }

    public mutating func write(_ value: UInt64) {
        appendBigEndian(value)
    }

    public mutating func write(_ value: UInt128) {
        appendBigEndian(value)
    }

    public mutating func write(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    /// Writes bytes whose length both sides already know (keys, signatures, digests).
    public mutating func writeFixed(_ value: [UInt8]) {
        bytes.append(contentsOf: value)
    }

    /// Writes a `UInt32` length prefix then the bytes.
    ///
    /// The caller guarantees `value.count` is within the field's limit; the
    /// decoder enforces the same limit, so an oversize value cannot round-trip.
    public mutating func writeVariable(_ value: [UInt8]) {
        write(UInt32(truncatingIfNeeded: value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func write(_ value: some WireEncodable) {
        value.encode(to: &self)
    }

    /// Replaces the four bytes at `offset` with `value`, big-endian: for a header whose
    /// fields (a length, a checksum) are known only once what follows it is written.
    /// The bytes must already have been written.
    public mutating func overwrite(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<UInt32>.size <= bytes.count, "overwrite past the written bytes")
        withUnsafeBytes(of: value.bigEndian) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
    }

    private mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
