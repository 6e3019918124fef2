import ParleyWire

/// Ethereum's Recursive Length Prefix encoding (the Yellow Paper, appendix B): what
/// transactions are signed and sent as.
public indirect enum RLPItem: Hashable, Sendable {
    case bytes([UInt8])
    case list([RLPItem])

    /// An unsigned integer: big-endian with no leading zero bytes (zero is the empty string).
    public static func uint(_ value: UInt64) -> RLPItem {
        .bytes(minimalBigEndian(UInt128(value)))
    }

    public static func amount(_ value: Amount) -> RLPItem {
        .bytes(minimalBigEndian(value.value))
    }

    public var encoded: [UInt8] {
        switch self {
        case let .bytes(bytes):
            if bytes.count == 1, bytes[0] < 0x80 { return bytes }
            return Self.header(count: bytes.count, short: 0x80, long: 0xb7) + bytes
        case let .list(items):
            let payload = items.flatMap(\.encoded)
            return Self.header(count: payload.count, short: 0xc0, long: 0xf7) + payload
        }
    }

    /// A length up to 55 fits in the first byte; a longer one follows it, big-endian.
    private static func header(count: Int, short: UInt8, long: UInt8) -> [UInt8] {
        if count <= 55 { return [short + UInt8(count)] }
        let length = minimalBigEndian(UInt128(count))
        return [long + UInt8(length.count)] + length
    }

    static func minimalBigEndian(_ value: UInt128) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        while rest > 0 {
            bytes.insert(UInt8(truncatingIfNeeded: rest), at: 0)
            rest >>= 8
        }
        return bytes
    }
}
