import Testing

@testable import ParleyCrypto

@Suite struct ConstantTimeTests {
    @Test(arguments: [
        ([], [], true),
        ([1, 2, 3], [1, 2, 3], true),
        ([1, 2, 3], [9, 2, 3], false),
        ([1, 2, 3], [1, 2, 9], false),
        ([1, 2, 3], [1, 2], false),
        ([], [0], false),
        ([0], [], false),
    ] as [([UInt8], [UInt8], Bool)])
    func constantTimeEqualTruthTable(a: [UInt8], b: [UInt8], equal: Bool) {
        #expect(constantTimeEqual(a, b) == equal)
        #expect(constantTimeEqual(b, a) == equal)
    }

    @Test func largeEqualBuffersCompareEqual() {
        let data = SecureRandom.bytes(4096)
        #expect(constantTimeEqual(data, data))
        var other = data
        other[4095] ^= 1
        #expect(!constantTimeEqual(data, other))
    }
}
