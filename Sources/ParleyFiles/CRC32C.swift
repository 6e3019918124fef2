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

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        // Through the table's buffer: no bounds check per byte (the faster of the two copies this replaces).
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
