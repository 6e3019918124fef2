import CNettle

#if !_endian(little)
#error("Keccak256 absorbs bytes straight into the permutation's lanes, which assumes a little-endian host")
#endif

/// Keccak-256 as Ethereum uses it: the original Keccak padding (`0x01 … 0x80`), not
/// SHA3-256's (`0x06 … 0x80`), so the two give different digests for the same input.
///
/// Built on nettle's Keccak-f[1600] permutation (`sha3_permute`, Debian's nettle-dev); only
/// the sponge around it is here. Checked against the Keccak team's test vectors and
/// Ethereum's known hashes (`Keccak256Tests`).
public enum Keccak256 {
    /// Bytes absorbed per permutation: 1600 bits minus a capacity of 512.
    public static let rate = 136

    public static func hash(_ message: some Collection<UInt8>) -> Digest {
        var state = sha3_state()
        withUnsafeMutableBytes(of: &state) { lanes in
            var offset = 0
            for byte in message {
                lanes[offset] ^= byte
                offset += 1
                if offset == rate {
                    permute(lanes)
                    offset = 0
                }
            }
            lanes[offset] ^= 0x01
            lanes[rate - 1] ^= 0x80
            permute(lanes)
        }
        let bytes = withUnsafeBytes(of: &state) { Array($0.prefix(Digest.byteCount)) }
        return Digest(checkedBytes: bytes)
    }

    /// Keccak-256 of several parts, as if concatenated (Solidity's `keccak256(abi.encodePacked(…))`).
    public static func hash(_ parts: [UInt8]...) -> Digest {
        hash(parts.joined())
    }

    private static func permute(_ lanes: UnsafeMutableRawBufferPointer) {
        lanes.baseAddress.map { nettle_sha3_permute($0.assumingMemoryBound(to: sha3_state.self)) }
    }
}
