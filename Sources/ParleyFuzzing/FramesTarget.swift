import ParleyChannel
import ParleyCrypto
import ParleyTransport
import ParleyWire

extension FuzzTargets {
    /// The byte stream a peer writes to a TCP connection: length-prefixed frames, and the
    /// AEAD layer (`FrameSealer`/`FrameOpener`) that the session puts in them.
    ///
    /// Input: 1 byte of chunking (how the stream is cut into reads), 2 bytes of frame limit,
    /// then the stream. Checks: frames re-encode to exactly the bytes consumed, in order;
    /// a length over the limit is the decoder's only error, raised when the length is read,
    /// and no longer frame is ever returned. Every frame is then sealed and opened again (same bytes),
    /// and a copy with one byte flipped must fail and kill the opener.
    static let frames = FuzzTarget(
        name: "frames",
        summary: "FrameDecoder over a stream cut into reads, then FrameSealer/FrameOpener on each frame",
        maxInputBytes: 16 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let chunking = Int(input.byte())
            let limit = Int(input.uint16())
            let stream = input.rest()
            var decoder = FrameDecoder(maxFrameBytes: limit)
            var reencoded: [UInt8] = []
            var frames: [[UInt8]] = []
            var offset = 0
            var step = 0
            readLoop: while offset < stream.count {
                let size = max(1, (chunking + step * 7) % 64)
                step += 1
                let end = min(stream.count, offset + size)
                decoder.append(stream[offset..<end])
                offset = end
                try Fuzz.check(decoder.bufferedBytes <= stream.count, "the decoder holds more bytes than it was given")
                while true {
                    let frame: [UInt8]?
                    do throws(WireError) {
                        frame = try decoder.nextFrame()
                    } catch {
                        guard case let .lengthExceedsLimit(_, length, limitSeen) = error, length > limitSeen, limitSeen == limit else {
                            throw FuzzFinding("the frame decoder failed with \(error), not an over-limit length")
                        }
                        break readLoop
                    }
                    guard let frame else { break }
                    try Fuzz.check(frame.count <= limit, "a \(frame.count)-byte frame passed a \(limit)-byte limit")
                    do {
                        reencoded += try FrameEncoder.frame(frame, maxFrameBytes: limit)
                    } catch {
                        throw FuzzFinding("a decoded frame does not encode: \(error)")
                    }
                    frames.append(frame)
                }
            }
            try Fuzz.canonical(reencoded, stream.prefix(reencoded.count), "the frames")
            try sealAndOpen(frames.prefix(4))
        },
        seeds: {
            let messages = Samples.allParams.map { params in
                ChannelMessage.propose(state: Samples.state(params, version: 1, moved: 10), signature: params.sign(
                    Samples.state(params, version: 1, moved: 10), with: Samples.alice)).wireBytes
            }
            var seeds: [[UInt8]] = []
            for limit in [UInt16(4096), UInt16.max] {
                let frames = messages.compactMap { try? FrameEncoder.frame($0, maxFrameBytes: Int(limit)) }
                seeds.append([3, UInt8(limit >> 8), UInt8(limit & 0xff)] + frames.flatMap { $0 })
            }
            seeds.append([1, 0, 16] + [0, 0, 0, 17] + [UInt8](repeating: 0xaa, count: 17))  // over the limit
            seeds.append([0, 0xff, 0xff] + [0, 0, 0, 0])  // an empty frame
            return seeds
        })

    /// Seals and opens each frame with a fixed key: the payload must come back unchanged, and
    /// one flipped byte must fail the opener for good.
    private static func sealAndOpen(_ frames: ArraySlice<[UInt8]>) throws(FuzzFinding) {
        guard !frames.isEmpty else { return }
        let key = SecretBytes(copying: [UInt8](repeating: 0x5a, count: 32))
        var sealer = FrameSealer(key: key)
        var opener = FrameOpener(key: key)
        for frame in frames where frame.count <= SecureFrames.maxPayloadBytes {
            let sealed: [UInt8]
            do { sealed = try sealer.seal(frame) } catch { throw FuzzFinding("sealing a \(frame.count)-byte payload failed: \(error)") }
            do {
                let opened = try opener.open(sealed)
                try Fuzz.check(opened == frame, "a sealed frame opened to other bytes")
            } catch {
                throw FuzzFinding("a frame sealed with the same key did not open: \(error)")
            }
        }
        guard let last = frames.last, last.count <= SecureFrames.maxPayloadBytes else { return }
        var tampered: [UInt8]
        do { tampered = try sealer.seal(last) } catch { throw FuzzFinding("sealing failed: \(error)") }
        let index = (last.first.map(Int.init) ?? 0) % tampered.count
        tampered[index] ^= 0x01
        let opened: Bool
        do {
            _ = try opener.open(tampered)
            opened = true
        } catch {
            opened = false
        }
        try Fuzz.check(!opened, "a frame with byte \(index) flipped opened")
        try Fuzz.check(opener.isDead, "the opener lives on after a tampered frame")
    }
}
