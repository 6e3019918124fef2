import ParleyCrypto
import ParleyWire

/// Encrypted frames after the handshake (Docs/Transport.md, "Encrypted frames").
///
/// On the wire a frame is `u32 length || ciphertext`, the ciphertext being
/// XChaCha20-Poly1305 of the payload under the direction's session key with
/// `nonce = 16 zero bytes || u64 big-endian frame index` and no associated data. Frame
/// indexes start at 0 in each direction and go up by one per frame, and they are never
/// sent: the opener uses the index it expects, so a replayed, reordered, dropped or cut
/// frame does not authenticate, and the length prefix needs no separate protection (a
/// changed length changes the ciphertext the opener sees). Keys are fresh per session and
/// direction, so a nonce never repeats under one key.
public enum SecureFrames {
    /// Largest ciphertext: the largest frame the wire codec accepts.
    public static let maxCiphertextBytes = WireLimits.maxFrameBytes
    /// Largest payload that fits in one frame once the tag is added.
    public static let maxPayloadBytes = maxCiphertextBytes - AEAD.tagBytes
    /// A counter at this value is used up: indexes run 0...(2^64 - 2), so the counter
    /// never wraps and a nonce is never reused.
    static let exhaustedIndex = UInt64.max
    private static let zeroNoncePrefix = [UInt8](repeating: 0, count: AEAD.nonceBytes - MemoryLayout<UInt64>.size)

    static func nonce(frameIndex: UInt64) -> [UInt8] {
        var nonce = zeroNoncePrefix
        withUnsafeBytes(of: frameIndex.bigEndian) { nonce.append(contentsOf: $0) }
        return nonce
    }
}

/// Seals the frames one side sends. Not copyable: a copy would seal with the same
/// counter, reusing nonces. Keep exactly one per session direction.
public struct FrameSealer: ~Copyable, Sendable {
    private let key: SecretBytes
    /// The index the next sealed frame gets.
    public private(set) var nextFrameIndex: UInt64

    /// A sealer for this side's ``SessionKeys/sending`` key.
    public init(session: SessionKeys) {
        self.init(key: session.sending)
    }

    /// A sealer on a 32-byte key, starting at frame 0.
    public init(key: SecretBytes) {
        self.init(key: key, startingAt: 0)
    }

    /// Starts somewhere other than 0; only tests need this, to reach counter exhaustion.
    init(key: SecretBytes, startingAt frameIndex: UInt64) {
        precondition(key.count == AEAD.keyBytes, "frame key must be \(AEAD.keyBytes) bytes")
        self.key = key
        nextFrameIndex = frameIndex
    }

    /// The ciphertext for `payload` (`payload.count + AEAD.tagBytes` bytes), to send as one
    /// frame payload. On error nothing is sealed and the index does not move.
    public mutating func seal(_ payload: [UInt8]) throws(SecureFrameError) -> [UInt8] {
        guard payload.count <= SecureFrames.maxPayloadBytes else {
            throw .payloadTooLarge(length: payload.count, limit: SecureFrames.maxPayloadBytes)
        }
        guard nextFrameIndex != SecureFrames.exhaustedIndex else { throw .counterExhausted }
        let sealed = AEAD.seal(payload, key: key, nonce: SecureFrames.nonce(frameIndex: nextFrameIndex))
        nextFrameIndex += 1
        return sealed
    }

    /// ``seal(_:)`` with the frame's length prefix in front: the bytes to write to the socket.
    public mutating func sealFrame(_ payload: [UInt8]) throws(SecureFrameError) -> [UInt8] {
        let sealed = try seal(payload)
        var frame = [UInt8]()
        frame.reserveCapacity(WireLimits.frameHeaderBytes + sealed.count)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: sealed.count).bigEndian) { frame.append(contentsOf: $0) }
        frame.append(contentsOf: sealed)
        return frame
    }
}

/// Opens the frames one side receives, strictly in order. Not copyable, like ``FrameSealer``.
///
/// The first frame that fails kills the opener: that call throws
/// ``SecureFrameError/tampered(frameIndex:)`` and every later one
/// ``SecureFrameError/sessionDead``, so a session never continues past a bad frame.
public struct FrameOpener: ~Copyable, Sendable {
    private let key: SecretBytes
    /// The index the next frame must have been sealed with.
    public private(set) var nextFrameIndex: UInt64
    /// Whether a frame has failed; a dead opener opens nothing.
    public private(set) var isDead = false

    /// An opener for this side's ``SessionKeys/receiving`` key.
    public init(session: SessionKeys) {
        self.init(key: session.receiving)
    }

    /// An opener on a 32-byte key, expecting frame 0 first.
    public init(key: SecretBytes) {
        self.init(key: key, startingAt: 0)
    }

    /// Starts somewhere other than 0; only tests need this, to reach counter exhaustion.
    init(key: SecretBytes, startingAt frameIndex: UInt64) {
        precondition(key.count == AEAD.keyBytes, "frame key must be \(AEAD.keyBytes) bytes")
        self.key = key
        nextFrameIndex = frameIndex
    }

    /// The payload of the next frame, given its ciphertext (the frame without its length prefix).
    public mutating func open(_ ciphertext: [UInt8]) throws(SecureFrameError) -> [UInt8] {
        guard !isDead else { throw .sessionDead }
        guard nextFrameIndex != SecureFrames.exhaustedIndex else {
            isDead = true
            throw .counterExhausted
        }
        let index = nextFrameIndex
        guard ciphertext.count <= SecureFrames.maxCiphertextBytes,
            let payload = try? AEAD.open(ciphertext, key: key, nonce: SecureFrames.nonce(frameIndex: index))
        else {
            isDead = true
            throw .tampered(frameIndex: index)
        }
        nextFrameIndex += 1
        return payload
    }
}
