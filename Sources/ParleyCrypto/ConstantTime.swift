import CSodium

/// Compares two byte strings in time that depends only on their length.
///
/// Returns false when the lengths differ; the length is not treated as secret.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    Sodium.ensureInitialized()
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            guard let l = left.baseAddress, let r = right.baseAddress else { return false }
            return sodium_memcmp(l, r, left.count) == 0
        }
    }
}
