import CSodium

/// BLAKE2b-256 with domain separation.
///
/// Hashing sits on every channel update (each state is hashed before it is signed or
/// verified), so a hash makes one heap allocation: the digest's bytes. The hash state lives
/// on the stack and the domain prefix is fed from the tag's own storage.
public enum Blake2b {
    /// libsodium declares its hash state 64-byte aligned, which Swift cannot import (it sees
    /// an opaque pointer), so the state's memory is aligned by hand.
    private static let stateAlignment = 64

    /// BLAKE2b-256 over (UInt8(tag.utf8.count) || tag.utf8 || data): the length prefix makes (tag, data) pairs unambiguous.
    public static func hash256(domain: DigestDomain, _ data: [UInt8]) -> Digest {
        data.withUnsafeBytes { hash256(domain: domain, $0) }
    }

    /// BLAKE2b-256 over (UInt8(tag.utf8.count) || tag.utf8 || data): the length prefix makes (tag, data) pairs unambiguous.
    public static func hash256(domain: DigestDomain, _ data: UnsafeRawBufferPointer) -> Digest {
        var tag = domain.tag
        // DigestDomain guarantees 1...255 tag bytes, so the count fits the prefix byte.
        let prefix = UInt8(tag.utf8.count)
        return streamingHash256 { update in
            withUnsafeBytes(of: prefix) { update($0) }
            // `withUTF8` reads a native or literal string in place (no copy).
            tag.withUTF8 { update(UnsafeRawBufferPointer($0)) }
            update(data)
        }
    }

    /// Plain BLAKE2b-256 with no domain, for known-answer tests of the primitive.
    static func plainHash256(_ data: [UInt8]) -> Digest {
        data.withUnsafeBytes { bytes in streamingHash256 { update in update(bytes) } }
    }

    private static func streamingHash256(
        _ feed: (_ update: (UnsafeRawBufferPointer) -> Void) -> Void
    ) -> Digest {
        Sodium.ensureInitialized()
        let stateBytes = crypto_generichash_statebytes()
        // A few hundred bytes, which the standard library puts on the stack, but only for an
        // alignment it supports there (64 would send it to the heap): so ask for the state's
        // size plus `stateAlignment - 1` spare bytes and align the start by hand. The aligned
        // start is at most `stateAlignment - 1` bytes in, so the state stays inside the buffer.
        let out = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: stateBytes + stateAlignment - 1) { buffer in
            // The capacity is nonzero, so the buffer always has an address.
            guard let base = buffer.baseAddress else { preconditionFailure("BLAKE2b state buffer is empty") }
            let state = OpaquePointer(UnsafeMutableRawPointer(base).alignedUp(toMultipleOf: stateAlignment))
            _ = crypto_generichash_init(state, nil, 0, Digest.byteCount)
            feed { chunk in
                _ = withNonNullPointer(to: chunk) { pointer, count in
                    crypto_generichash_update(state, pointer, UInt64(count))
                }
            }
            // libsodium writes exactly `Digest.byteCount` bytes, the capacity requested.
            return [UInt8](unsafeUninitializedCapacity: Digest.byteCount) { buffer, initialized in
                guard let digest = buffer.baseAddress else { return }  // capacity is nonzero
                _ = crypto_generichash_final(state, digest, Digest.byteCount)
                initialized = Digest.byteCount
            }
        }
        return Digest(checkedBytes: out)
    }
}
