/// Splits a byte stream into length-prefixed frames.
///
/// A frame is a big-endian `UInt32` payload length followed by the payload.
/// The transport puts each (encrypted) message in one frame. The decoder
/// rejects a length above `maxFrameBytes` as soon as the four header bytes
/// arrive, so a hostile peer cannot make it buffer more than one maximal frame.
public struct FrameDecoder: Sendable {
    /// The largest payload length accepted. May be raised (or lowered) between frames,
    /// for example from the handshake's limit to the session's, keeping buffered bytes.
    public var maxFrameBytes: Int
    /// An array with a consumed-prefix index rather than a `Deque`: each payload leaves as
    /// one contiguous copy, whereas a ring buffer that wrapped would copy it byte by byte
    /// (`Array(deque[range])` goes through the slice's iterator).
    private var buffer: [UInt8] = []
    private var consumed = 0

    public init(maxFrameBytes: Int = WireLimits.maxFrameBytes) {
        self.maxFrameBytes = maxFrameBytes
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedBytes: Int { buffer.count - consumed }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame's payload, or `nil` until more bytes arrive.
    public mutating func nextFrame() throws(WireError) -> [UInt8]? {
        let header = WireLimits.frameHeaderBytes
        guard bufferedBytes >= header else { return nil }
        var length = 0
        for index in consumed..<consumed + header {
            length = length << 8 | Int(buffer[index])
        }
        guard length <= maxFrameBytes else {
            throw .lengthExceedsLimit(field: "frame", length: length, limit: maxFrameBytes)
        }
        guard bufferedBytes >= header + length else { return nil }
        let start = consumed + header
        let payload = Array(buffer[start..<start + length])
        consumed = start + length
        dropConsumed()
        return payload
    }

    /// Forgets the consumed bytes once they are all of the buffer, or more than 4 KiB and
    /// more than half of it, so appending and consuming both stay amortised O(1).
    private mutating func dropConsumed() {
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
        } else if consumed > 4096 && consumed * 2 > buffer.count {
            buffer.removeFirst(consumed)
            consumed = 0
        }
    }
}

public enum FrameEncoder {
    /// The frame carrying `payload`; a payload the peer's decoder would refuse is refused here.
    public static func frame(
        _ payload: [UInt8], maxFrameBytes: Int = WireLimits.maxFrameBytes
    ) throws(WireError) -> [UInt8] {
        guard payload.count <= maxFrameBytes else {
            throw .lengthExceedsLimit(field: "frame", length: payload.count, limit: maxFrameBytes)
        }
        var framed = [UInt8]()
        framed.reserveCapacity(WireLimits.frameHeaderBytes + payload.count)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: payload.count).bigEndian) {
            framed.append(contentsOf: $0)
        }
        framed.append(contentsOf: payload)
        return framed
    }
}
