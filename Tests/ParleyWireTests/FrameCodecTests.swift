import PropertyBased
import Testing

@testable import ParleyWire

@Suite struct FrameCodecTests {
    @Test func framesSurviveArbitraryChunking() async throws {
        let payloads = Gen.uint8().array(of: 0...300).array(of: 1...8)
        await propertyCheck(count: 200, input: payloads, Gen.int(in: 1...64)) { payloads, chunk in
            var stream: [UInt8] = []
            for payload in payloads { stream += try FrameEncoder.frame(payload) }
            var decoder = FrameDecoder()
            var received: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunk, stream.count)
                decoder.append(stream[offset..<end])
                offset = end
                while let frame = try decoder.nextFrame() { received.append(frame) }
            }
            #expect(received == payloads)
            #expect(decoder.bufferedBytes == 0)
        }
    }

    @Test func oversizeLengthIsRejectedFromTheHeaderAlone() throws {
        var decoder = FrameDecoder(maxFrameBytes: 1024)
        decoder.append([0x00, 0x00, 0x04, 0x01])  // 1025: one more than allowed, no body sent
        #expect(throws: WireError.lengthExceedsLimit(field: "frame", length: 1025, limit: 1024)) {
            try decoder.nextFrame()
        }
    }

    @Test func partialFrameWaitsForMoreBytes() throws {
        var decoder = FrameDecoder()
        decoder.append([0, 0, 0, 3, 0xAA])
        #expect(try decoder.nextFrame() == nil)
        decoder.append([0xBB, 0xCC])
        #expect(try decoder.nextFrame() == [0xAA, 0xBB, 0xCC])
    }

    @Test func encoderRefusesWhatTheDecoderWouldRefuse() throws {
        #expect(throws: WireError.lengthExceedsLimit(field: "frame", length: 11, limit: 10)) {
            try FrameEncoder.frame(Array(repeating: 0, count: 11), maxFrameBytes: 10)
        }
    }
}
