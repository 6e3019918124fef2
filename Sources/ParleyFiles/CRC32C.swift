/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum on every journal
/// record and every devchain ledger record.
///
/// Catches torn writes and bit flips; it is not a defence against an attacker who can
/// write the file (nothing on the local disk is).
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The checksum of `bytes`. Contiguous bytes (an array, a slice of one) go to the buffer
    /// loop in one call. This used to be a plain loop over the generic sequence: called from
    /// another module, unspecialized, it went through the iterator's witnesses for every byte
    /// and allocated on each, about 650 allocations per payment in `parley demo` (heaptrack,
    /// issue 19; Docs/Performance.md).
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }

    /// The checksum of the bytes in `buffer`.
    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        // Through the table's buffer: no bounds check per byte (the faster of the two copies this replaces).
        table.withUnsafeBufferPointer { table in
            for byte in buffer { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
