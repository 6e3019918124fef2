import CSodium

/// BLAKE2b-256 with domain separation.
public enum Blake2b {
    /// libsodium declares its hash state 64-byte aligned, which Swift cannot import (it sees
    /// an opaque pointer), so the state is allocated by hand with that alignment.
    private static let stateAlignment = 64

    /// BLAKE2b-256 over (UInt8(tag.utf8.count) || tag.utf8 || data): the length prefix makes (tag, data) pairs unambiguous.
    public static func hash256(domain: DigestDomain, _ data: [UInt8]) -> Digest {
        data.withUnsafeBytes { hash256(domain: domain, $0) }
    }

    /// BLAKE2b-256 over (UInt8(tag.utf8.count) || tag.utf8 || data): the length prefix makes (tag, data) pairs unambiguous.
    public static func hash256(domain: DigestDomain, _ data: UnsafeRawBufferPointer) -> Digest {
        let prefix = [UInt8(domain.tag.utf8.count)] + Array(domain.tag.utf8)
        return streamingHash256 { update in
            prefix.withUnsafeBytes { update($0) }
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
        let raw = UnsafeMutableRawPointer.allocate(byteCount: stateBytes, alignment: stateAlignment)
        defer { raw.deallocate() }
        let state = OpaquePointer(raw)
        var out = [UInt8](repeating: 0, count: Digest.byteCount)
        _ = crypto_generichash_init(state, nil, 0, Digest.byteCount)
        feed { chunk in
            _ = withNonNullPointer(to: chunk) { pointer, count in
                crypto_generichash_update(state, pointer, UInt64(count))
            }
        }
        _ = crypto_generichash_final(state, &out, Digest.byteCount)
        return Digest(checkedBytes: out)
    }
}
