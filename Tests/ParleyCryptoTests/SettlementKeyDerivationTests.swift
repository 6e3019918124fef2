import Testing

@testable import ParleyCrypto

/// Expected values from hashlib's BLAKE2b and eth-keys, independent of this code.
@Suite struct SettlementKeyDerivationTests {
    @Test func theSettlementKeyIsDerivedFromTheSeedAsDocumented() throws {
        let vectors: [(seed: [UInt8], address: String)] = [
            ([UInt8](repeating: 1, count: 32), "0x43BF38dAf52E3f30d9F2bc9a9C5e6b2Ea85e687d"),
            (RFC8032Vector1.seed, "0xE28fbEF568314e3161d4888D84f25111C4AaEb13"),
        ]
        for (seed, address) in vectors {
            #expect(try SigningKey(seed: seed).settlementKey.address.checksummed == address)
        }
    }

    @Test func eachIdentityHasItsOwnAccountAndKeepsIt() throws {
        let key = SigningKey()
        #expect(key.settlementKey.address == key.settlementKey.address)
        #expect(SigningKey().settlementKey.address != key.settlementKey.address)
        // The same seed, loaded again, gives the same account: the key file backs up both.
        let again = try key.withSeed { try SigningKey(seed: Array($0)) }
        #expect(again.settlementKey.address == key.settlementKey.address)
    }
}
