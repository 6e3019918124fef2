/// CRC-32C (Castagnoli), the checksum of every ledger record: it catches torn and
/// flipped bytes; it is not a defence against someone editing the file on purpose.
enum CRC32C {
    private static let polynomial: UInt32 = 0x82F6_3B78  // reflected 0x1EDC6F41

    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
