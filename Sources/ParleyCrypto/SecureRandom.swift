import CSodium

/// Cryptographically secure random values from the operating system, via libsodium.
///
/// Use for keys and nonces. Simulations that must replay from a seed use their own seeded
/// generator instead.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "cannot generate a negative number of random bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
        }
        return out
    }

    public static func uint64() -> UInt64 {
        Sodium.ensureInitialized()
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { buffer in
            if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
        }
        return value
    }
}
