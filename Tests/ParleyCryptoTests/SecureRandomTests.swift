import Testing

@testable import ParleyCrypto

@Suite struct SecureRandomTests {
    @Test(arguments: [0, 1, 32, 1000])
    func bytesHaveTheRequestedLength(count: Int) {
        #expect(SecureRandom.bytes(count).count == count)
    }

    @Test func consecutiveCallsDiffer() {
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
        #expect(SecureRandom.uint64() != SecureRandom.uint64())
    }

    @Test func bytesAreNotAllZero() {
        #expect(SecureRandom.bytes(64).contains { $0 != 0 })
    }
}
