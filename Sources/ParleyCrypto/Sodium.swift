import CSodium

/// `sodium_init()` runs exactly once, the first time any entry point touches this global;
/// Swift initializes globals lazily and thread-safely.
private let sodiumInitResult: Int32 = sodium_init()

/// The libsodium library this module is built on.
public enum Sodium {
    /// Initializes libsodium if that has not happened yet. Cheap after the first call.
    ///
    /// Every public entry point of this module that calls libsodium calls this first, so
    /// callers never need to. A failure here means the process has no usable CSPRNG,
    /// and continuing would produce predictable keys, so it stops the process.
    public static func ensureInitialized() {
        precondition(sodiumInitResult >= 0, "libsodium failed to initialize (sodium_init returned \(sodiumInitResult))")
    }
}

/// Calls `body` with a pointer libsodium may read `bytes.count` bytes from, never null.
///
/// An empty array may have no storage; libsodium's contract is a valid pointer even for
/// zero-length input, so a pointer to a dummy byte stands in.
func withNonNullPointer<R>(to bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    bytes.withUnsafeBufferPointer { buffer in
        if let base = buffer.baseAddress { return body(base, buffer.count) }
        var dummy: UInt8 = 0
        return withUnsafePointer(to: &dummy) { body($0, 0) }
    }
}

/// The raw-buffer form of ``withNonNullPointer(to:_:)``.
func withNonNullPointer<R>(to bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    if let base = bytes.baseAddress {
        return body(base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
    var dummy: UInt8 = 0
    return withUnsafePointer(to: &dummy) { body($0, 0) }
}
