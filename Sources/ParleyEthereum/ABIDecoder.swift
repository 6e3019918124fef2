import ParleyCrypto
import ParleyWire

/// Reads the head-and-tail ABI encoding of return data and event data, word by word.
/// Every read is bounds-checked and says what it was reading when the bytes are short,
/// an offset points outside, or a value does not fit the Swift type: answers come from a
/// node Parley does not control.
struct ABIDecoder {
    let bytes: [UInt8]
    /// Where this (possibly nested) tuple starts: offsets inside it count from here.
    let base: Int

    init(_ bytes: [UInt8], base: Int = 0) {
        self.bytes = bytes
        self.base = base
    }

    func word(_ index: Int, _ field: String) throws(EthereumRPCError) -> ArraySlice<UInt8> {
        let start = base + index * ABI.wordBytes
        guard index >= 0, start >= 0, start + ABI.wordBytes <= bytes.count else {
            throw .badAnswer("ABI data too short for \(field)")
        }
        return bytes[start..<start + ABI.wordBytes]
    }

    /// A word that must hold at most `bits` bits of value.
    private func small(_ index: Int, bits: Int, _ field: String) throws(EthereumRPCError) -> ArraySlice<UInt8> {
        let word = try word(index, field)
        guard word.prefix(ABI.wordBytes - bits / 8).allSatisfy({ $0 == 0 }) else {
            throw .badAnswer("\(field) does not fit in \(bits) bits")
        }
        return word.suffix(bits / 8)
    }

    func uint64(_ index: Int, _ field: String) throws(EthereumRPCError) -> UInt64 {
        try small(index, bits: 64, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    func uint8(_ index: Int, _ field: String) throws(EthereumRPCError) -> UInt8 {
        try small(index, bits: 8, field).last ?? 0
    }

    func amount(_ index: Int, _ field: String) throws(EthereumRPCError) -> Amount {
        Amount(try small(index, bits: 128, field).reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
    }

    /// A full 256-bit word as its value; for packed storage words.
    func uint256(_ index: Int, _ field: String) throws(EthereumRPCError) -> (high: UInt128, low: UInt128) {
        let word = try word(index, field)
        let high = word.prefix(16).reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        let low = word.suffix(16).reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        return (high, low)
    }

    func bool(_ index: Int, _ field: String) throws(EthereumRPCError) -> Bool {
        switch try small(index, bits: 8, field).last {
        case 0: false
        case 1: true
        default: throw .badAnswer("\(field) is not a bool")
        }
    }

    func bytes32(_ index: Int, _ field: String) throws(EthereumRPCError) -> [UInt8] {
        Array(try word(index, field))
    }

    func address(_ index: Int, _ field: String) throws(EthereumRPCError) -> EthereumAddress {
        let bytes = try small(index, bits: 160, field)
        guard let address = try? EthereumAddress(bytes: bytes) else { throw .badAnswer("\(field) is not an address") }
        return address
    }

    /// Dynamic `bytes` whose offset (from `base`) is in word `index`, at most `limit` long.
    func dynamicBytes(_ index: Int, limit: Int, _ field: String) throws(EthereumRPCError) -> [UInt8] {
        let offset = try uint64(index, "\(field) offset")
        guard offset % UInt64(ABI.wordBytes) == 0, offset <= UInt64(bytes.count) else {
            throw .badAnswer("\(field) offset \(offset) is outside the data")
        }
        let tail = ABIDecoder(bytes, base: base + Int(offset))
        let length = try tail.uint64(0, "\(field) length")
        guard length <= UInt64(limit) else { throw .badAnswer("\(field) is \(length) bytes, more than \(limit)") }
        let start = tail.base + ABI.wordBytes
        guard start + Int(length) <= bytes.count else { throw .badAnswer("\(field) runs past the data") }
        return Array(bytes[start..<start + Int(length)])
    }

    func string(_ index: Int, limit: Int, _ field: String) throws(EthereumRPCError) -> String {
        let raw = try dynamicBytes(index, limit: limit, field)
        guard let text = String(validating: raw, as: UTF8.self) else { throw .badAnswer("\(field) is not UTF-8") }
        return text
    }
}
