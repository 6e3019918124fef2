import ParleyWire
import Testing

@testable import ParleyCrypto
@testable import ParleyTransport

@Suite struct SecureFrameTests {
    private let key = SecretBytes(copying: SecureRandom.bytes(AEAD.keyBytes))

    /// Seals `count` distinct payloads in order; payload i is "frame i".
    private func sealed(_ count: Int) throws -> [[UInt8]] {
        var sealer = FrameSealer(key: key)
        var frames: [[UInt8]] = []
        for index in 0..<count { frames.append(try sealer.seal(Array("frame \(index)".utf8))) }
        return frames
    }

    /// Asserts that the opener is dead: every later frame, even a genuine one, is refused.
    private func expectDead(_ opener: inout FrameOpener, genuine: [UInt8]) {
        let isDead = opener.isDead
        #expect(isDead)
        #expect(throws: SecureFrameError.sessionDead) { try opener.open(genuine) }
        #expect(throws: SecureFrameError.sessionDead) { try opener.open([]) }
    }

    @Test func limitsFollowTheWireCodec() {
        #expect(SecureFrames.maxCiphertextBytes == WireLimits.maxFrameBytes)
        #expect(SecureFrames.maxPayloadBytes == WireLimits.maxFrameBytes - AEAD.tagBytes)
    }

    @Test func thousandFramesRoundTripThroughTheFrameCodec() throws {
        var sealer = FrameSealer(key: key)
        var opener = FrameOpener(key: key)
        var decoder = FrameDecoder()
        var stream: [UInt8] = []
        let payloads = (0..<1000).map { index in Array("frame \(index) ".utf8) + [UInt8](repeating: UInt8(index % 256), count: index) }
        for payload in payloads { stream += try sealer.sealFrame(payload) }
        #expect(sealer.nextFrameIndex == 1000)
        decoder.append(stream)
        var opened: [[UInt8]] = []
        while let frame = try decoder.nextFrame() { opened.append(try opener.open(frame)) }
        #expect(opened == payloads)
        #expect(opener.nextFrameIndex == 1000)
        let isDead = opener.isDead
        #expect(!isDead)
    }

    @Test func emptyAndMaximalPayloadsRoundTrip() throws {
        var sealer = FrameSealer(key: key)
        var opener = FrameOpener(key: key)
        let largest = SecureRandom.bytes(SecureFrames.maxPayloadBytes)
        let largestFrame = try sealer.sealFrame(largest)
        #expect(largestFrame.count == WireLimits.frameHeaderBytes + WireLimits.maxFrameBytes)
        var decoder = FrameDecoder()
        decoder.append(largestFrame)
        decoder.append(try sealer.sealFrame([]))
        #expect(try opener.open(try #require(try decoder.nextFrame())) == largest)
        #expect(try opener.open(try #require(try decoder.nextFrame())) == [])
    }

    @Test func oversizePayloadIsRefusedWithoutUsingANonce() throws {
        var sealer = FrameSealer(key: key)
        let limit = SecureFrames.maxPayloadBytes
        #expect(throws: SecureFrameError.payloadTooLarge(length: limit + 1, limit: limit)) {
            try sealer.seal([UInt8](repeating: 0, count: limit + 1))
        }
        #expect(throws: SecureFrameError.payloadTooLarge(length: limit + 1, limit: limit)) {
            try sealer.sealFrame([UInt8](repeating: 0, count: limit + 1))
        }
        #expect(sealer.nextFrameIndex == 0)
        var opener = FrameOpener(key: key)
        #expect(try opener.open(try sealer.seal([9])) == [9])
    }

    @Test func oversizeCiphertextIsTampering() {
        var opener = FrameOpener(key: key)
        #expect(throws: SecureFrameError.tampered(frameIndex: 0)) {
            try opener.open([UInt8](repeating: 0, count: SecureFrames.maxCiphertextBytes + 1))
        }
        let isDead = opener.isDead
        #expect(isDead)
    }

    @Test func replayedFrameKillsTheSession() throws {
        let frames = try sealed(3)
        var opener = FrameOpener(key: key)
        _ = try opener.open(frames[0])
        _ = try opener.open(frames[1])
        #expect(throws: SecureFrameError.tampered(frameIndex: 2)) { try opener.open(frames[1]) }
        expectDead(&opener, genuine: frames[2])
    }

    @Test func reorderedFramesKillTheSession() throws {
        let frames = try sealed(3)
        var opener = FrameOpener(key: key)
        _ = try opener.open(frames[0])
        #expect(throws: SecureFrameError.tampered(frameIndex: 1)) { try opener.open(frames[2]) }
        expectDead(&opener, genuine: frames[1])
    }

    @Test func droppedFrameKillsTheSession() throws {
        let frames = try sealed(3)
        var opener = FrameOpener(key: key)
        _ = try opener.open(frames[0])
        #expect(throws: SecureFrameError.tampered(frameIndex: 1)) { try opener.open(frames[2]) }
        let isDead = opener.isDead
        #expect(isDead)
    }

    @Test func everyTruncationKillsTheSession() throws {
        let frame = try sealed(1)[0]
        for count in 0..<frame.count {
            var opener = FrameOpener(key: key)
            #expect(throws: SecureFrameError.tampered(frameIndex: 0)) { try opener.open(Array(frame.prefix(count))) }
            expectDead(&opener, genuine: frame)
        }
    }

    @Test func everyFlippedBitKillsTheSession() throws {
        let frames = try sealed(2)
        for bit in 0..<(frames[1].count * 8) {
            var opener = FrameOpener(key: key)
            _ = try opener.open(frames[0])
            var tampered = frames[1]
            tampered[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            #expect(throws: SecureFrameError.tampered(frameIndex: 1)) { try opener.open(tampered) }
            expectDead(&opener, genuine: frames[1])
        }
    }

    @Test func changedLengthPrefixKillsTheSession() throws {
        var sealer = FrameSealer(key: key)
        var stream = try sealer.sealFrame(Array("first".utf8)) + sealer.sealFrame(Array("second".utf8))
        stream[3] -= 1
        var decoder = FrameDecoder()
        decoder.append(stream)
        var opener = FrameOpener(key: key)
        #expect(throws: SecureFrameError.tampered(frameIndex: 0)) { try opener.open(try #require(try decoder.nextFrame())) }
        let isDead = opener.isDead
        #expect(isDead)
    }

    @Test func frameFromTheOtherDirectionIsRefused() throws {
        let otherKey = SecretBytes(copying: SecureRandom.bytes(AEAD.keyBytes))
        var reflected = FrameSealer(key: otherKey)
        var opener = FrameOpener(key: key)
        #expect(throws: SecureFrameError.tampered(frameIndex: 0)) { try opener.open(try reflected.seal([1])) }
    }

    @Test func sealerRefusesToWrapItsCounter() throws {
        var sealer = FrameSealer(key: key, startingAt: UInt64.max - 1)
        var opener = FrameOpener(key: key, startingAt: UInt64.max - 1)
        #expect(try opener.open(try sealer.seal([1])) == [1])
        #expect(sealer.nextFrameIndex == UInt64.max)
        #expect(throws: SecureFrameError.counterExhausted) { try sealer.seal([2]) }
        #expect(throws: SecureFrameError.counterExhausted) { try sealer.seal([]) }
        #expect(sealer.nextFrameIndex == UInt64.max)
        #expect(throws: SecureFrameError.counterExhausted) { try opener.open([]) }
        #expect(throws: SecureFrameError.sessionDead) { try opener.open([]) }
    }

    @Test func nonceIsSixteenZeroBytesThenTheBigEndianIndex() {
        #expect(SecureFrames.nonce(frameIndex: 0) == [UInt8](repeating: 0, count: 24))
        #expect(SecureFrames.nonce(frameIndex: 0x0102_0304_0506_0708) == [UInt8](repeating: 0, count: 16) + [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func frameIsTheAEADOfThePayloadUnderTheIndexNonce() throws {
        var sealer = FrameSealer(key: key)
        _ = try sealer.seal([0])
        let second = try sealer.seal(Array("x".utf8))
        #expect(try AEAD.open(second, key: key, nonce: SecureFrames.nonce(frameIndex: 1)) == Array("x".utf8))
    }
}
