/// Named bounds for every length the decoder reads from untrusted bytes.
///
/// A decoder checks the claimed length against one of these *before*
/// allocating, so a hostile length prefix costs nothing.
public enum WireLimits {
    /// The format version written as the first byte of every message. Version 2 widened
    /// amounts to 128 bits; a peer still on version 1 is refused with `unsupportedVersion`.
    public static let formatVersion: UInt8 = 2
    /// Largest application data blob carried in a channel state.
    public static let maxAppDataBytes = 64 * 1024
    /// Largest application identifier (`"parley.payment/1"`, ...).
    public static let maxAppIDBytes = 64
    /// Largest human-readable reason string in a rejection.
    public static let maxReasonBytes = 256
    /// Largest frame payload accepted from the network; bigger frames are an error, not a buffer.
    public static let maxFrameBytes = 128 * 1024
    /// Size of the big-endian length prefix in front of each frame.
    public static let frameHeaderBytes = 4
}
