/// A value in Solidity's contract ABI, for `abi.encode`: what Ethereum contracts hash and
/// what their calls carry.
///
/// Only what Parley needs: unsigned integers up to 128 bits of value (any `uintN` encodes
/// to the same 32-byte word), addresses, booleans, `bytesN`, dynamic `bytes` and `string`,
/// and fixed or dynamic arrays and tuples of those.
public indirect enum ABIValue: Hashable, Sendable {
    /// Any `uintN` holding a count, version, duration or chain id: one big-endian word.
    case uint(UInt64)
    /// Any `uintN` holding an amount: one big-endian word.
    case amount(Amount)
    /// A 20-byte address, right-aligned in its word.
    case address([UInt8])
    case bool(Bool)
    /// `bytes1` … `bytes32`: left-aligned in one word.
    case fixedBytes([UInt8])
    /// Dynamic `bytes`.
    case bytes([UInt8])
    case string(String)
    /// `T[k]`: as many values as its type says.
    case fixedArray([ABIValue])
    /// `T[]`.
    case array([ABIValue])
    case tuple([ABIValue])

    /// Whether the value's encoding lives in the tail, referenced by an offset in the head.
    public var isDynamic: Bool {
        switch self {
        case .uint, .amount, .address, .bool, .fixedBytes: false
        case .bytes, .string, .array: true
        case let .fixedArray(values), let .tuple(values): values.contains { $0.isDynamic }
        }
    }
}

/// Solidity's `abi.encode`: the standard head-and-tail encoding of the contract ABI
/// specification, word-aligned and big-endian.
public enum ABI {
    public static let wordBytes = 32

    /// `abi.encode(values…)`: the encoding of the tuple of `values`.
    public static func encode(_ values: [ABIValue]) -> [UInt8] {
        var out: [UInt8] = []
        encodeSequence(values, into: &out)
        return out
    }

    /// One 32-byte big-endian word holding `value`.
    public static func word(_ value: UInt128) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: wordBytes - 16)
        for shift in stride(from: 120, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> shift)) }
        return out
    }

    private static func encode(_ value: ABIValue, into out: inout [UInt8]) {
        switch value {
        case let .uint(number): out += word(UInt128(number))
        case let .amount(amount): out += word(amount.value)
        case let .address(bytes):
            precondition(bytes.count == 20, "an ABI address is 20 bytes")
            out += [UInt8](repeating: 0, count: wordBytes - 20) + bytes
        case let .bool(flag): out += word(flag ? 1 : 0)
        case let .fixedBytes(bytes):
            precondition((1...wordBytes).contains(bytes.count), "bytesN holds 1 to 32 bytes")
            out += bytes + [UInt8](repeating: 0, count: wordBytes - bytes.count)
        case let .bytes(bytes): encodePadded(bytes, into: &out)
        case let .string(text): encodePadded(Array(text.utf8), into: &out)
        case let .fixedArray(values), let .tuple(values): encodeSequence(values, into: &out)
        case let .array(values):
            out += word(UInt128(values.count))
            encodeSequence(values, into: &out)
        }
    }

    /// Length word, then the bytes padded with zeros to a whole number of words.
    private static func encodePadded(_ bytes: [UInt8], into out: inout [UInt8]) {
        out += word(UInt128(bytes.count))
        out += bytes
        let remainder = bytes.count % wordBytes
        if remainder != 0 { out += [UInt8](repeating: 0, count: wordBytes - remainder) }
    }

    /// Heads in order (a static value itself, a dynamic one as the offset of its tail from
    /// the start of this sequence), then the tails of the dynamic values in order.
    private static func encodeSequence(_ values: [ABIValue], into out: inout [UInt8]) {
        let headBytes = values.reduce(0) { total, value in
            total + (value.isDynamic ? wordBytes : staticSize(value))
        }
        var tails: [UInt8] = []
        for value in values {
            if value.isDynamic {
                out += word(UInt128(headBytes + tails.count))
                encode(value, into: &tails)
            } else {
                encode(value, into: &out)
            }
        }
        out += tails
    }

    private static func staticSize(_ value: ABIValue) -> Int {
        switch value {
        case let .fixedArray(values), let .tuple(values): values.reduce(0) { $0 + staticSize($1) }
        default: wordBytes
        }
    }
}
