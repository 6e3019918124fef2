import ParleyCrypto
import ParleyWire

/// Ethereum JSON-RPC's hex encodings: quantities ("0x1a", no leading zeros) and data
/// ("0x" and two digits per byte). Every decoder names what it was reading when the text
/// is not what the method promises.
enum Quantity {
    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    static func hex(_ value: Amount) -> String { "0x" + String(value.value, radix: 16) }

    static func data(_ bytes: some Sequence<UInt8>) -> String { "0x" + Hex.encode(bytes) }

    static func uint64(_ value: JSONValue?, _ field: String) throws(EthereumRPCError) -> UInt64 {
        guard let text = value?.string, text.hasPrefix("0x"), text.count > 2, text.count <= 18,
            let number = UInt64(text.dropFirst(2), radix: 16)
        else { throw .badAnswer("\(field) is not a 64-bit hex quantity: \(value?.description ?? "missing")") }
        return number
    }

    /// A quantity that must fit in 128 bits (balances in wei do: all the ether there is
    /// fits in 87 bits).
    static func amount(_ value: JSONValue?, _ field: String) throws(EthereumRPCError) -> Amount {
        guard let text = value?.string, text.hasPrefix("0x"), text.count > 2 else {
            throw .badAnswer("\(field) is not a hex quantity: \(value?.description ?? "missing")")
        }
        let digits = text.dropFirst(2).drop { $0 == "0" }
        guard digits.count <= 32, let number = digits.isEmpty ? 0 : UInt128(digits, radix: 16) else {
            throw .badAnswer("\(field) is not a quantity below 2^128: \(text)")
        }
        return Amount(number)
    }

    static func bytes(_ value: JSONValue?, _ field: String, count: Int? = nil) throws(EthereumRPCError) -> [UInt8] {
        guard let text = value?.string, text.hasPrefix("0x"), let bytes = Hex.decode(String(text.dropFirst(2))) else {
            throw .badAnswer("\(field) is not hex data: \(value?.description ?? "missing")")
        }
        if let count, bytes.count != count {
            throw .badAnswer("\(field) has \(bytes.count) bytes, expected \(count)")
        }
        return bytes
    }

    static func digest(_ value: JSONValue?, _ field: String) throws(EthereumRPCError) -> Digest {
        let bytes = try bytes(value, field, count: Digest.byteCount)
        guard let digest = try? Digest(bytes: bytes) else { throw .badAnswer("\(field) is not a 32-byte hash") }
        return digest
    }

    static func address(_ value: JSONValue?, _ field: String) throws(EthereumRPCError) -> EthereumAddress {
        let bytes = try bytes(value, field, count: EthereumAddress.byteCount)
        guard let address = try? EthereumAddress(bytes: bytes) else { throw .badAnswer("\(field) is not an address") }
        return address
    }
}
