import Synchronization
import Testing

@testable import ParleyCrypto

/// What a ``SecretBytes`` wipe observer saw.
private final class WipeRecord: Sendable {
    let seen = Mutex<[UInt8]?>(nil)
    var observer: @Sendable (UnsafeRawBufferPointer) -> Void {
        { buffer in self.seen.withLock { $0 = Array(buffer) } }
    }
}

private struct InitializerFailure: Error, Equatable {}

@Suite struct SecretBytesTests {
    @Test func copyingKeepsTheBytes() {
        let secret = SecretBytes(copying: [1, 2, 3, 4])
        #expect(secret.count == 4)
        #expect(secret.withUnsafeBytes { Array($0) } == [1, 2, 3, 4])
    }

    @Test func initializerFillsTheBuffer() {
        let secret = SecretBytes(count: 16) { buffer in
            for index in buffer.indices { buffer[index] = UInt8(index) }
        }
        #expect(secret.withUnsafeBytes { Array($0) } == Array(0..<16))
    }

    @Test func emptySecretIsAllowed() {
        let secret = SecretBytes(copying: [])
        #expect(secret.count == 0)
        #expect(secret.withUnsafeBytes { $0.count } == 0)
    }

    @Test func memoryIsZeroedBeforeItIsFreed() {
        let record = WipeRecord()
        do {
            let secret = SecretBytes(count: 32, wipeObserver: record.observer) { buffer in
                for index in buffer.indices { buffer[index] = 0xa5 }
            }
            #expect(secret.withUnsafeBytes { Array($0) } == [UInt8](repeating: 0xa5, count: 32))
            #expect(record.seen.withLock { $0 } == nil)
        }
        #expect(record.seen.withLock { $0 } == [UInt8](repeating: 0, count: 32))
    }

    @Test func failedInitializerWipesAndRethrows() {
        let record = WipeRecord()
        #expect(throws: InitializerFailure()) {
            _ = try SecretBytes(count: 8, wipeObserver: record.observer) { (buffer) throws(InitializerFailure) in
                for index in buffer.indices { buffer[index] = 0xff }
                throw InitializerFailure()
            }
        }
        #expect(record.seen.withLock { $0 } == [UInt8](repeating: 0, count: 8))
    }
}
