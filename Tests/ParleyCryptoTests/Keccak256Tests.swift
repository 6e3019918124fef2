import Testing

@testable import ParleyCrypto

/// Vectors from pycryptodome's Keccak (an independent implementation), the Keccak team's
/// "abc", and Ethereum's empty-input hash. Inputs are bytes `(7i + 3) mod 256`, chosen to
/// cross the 136-byte rate at every boundary (one less, equal, one more, twice).
@Suite struct Keccak256Tests {
    static let vectors: [(length: Int, hex: String)] = [
        (0, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (1, "69c322e3248a5dfc29d73c5b0553b0185a35cd5bb6386747517ef7e53b15e287"),
        (3, "7d228cdb40e661b0731cd20c876de675137701233a19b450a36e53a053407a22"),
        (135, "00ef96af9cf4b24c7f269d922294444a197d0a33638c2e56634c57e892103a8f"),
        (136, "742061bcad767ed4c4f5883b1dcb1aad11afdcc140dc469d953759b127b9f9ed"),
        (137, "e3371f61e770abf254c34239c3b0099ad90594507415bc81dd0a10b9692bbf2a"),
        (271, "4401c4afbe16ff911bdbf2d38e556e5b861f3fdf0f9d4306b1c46f6ae4f73584"),
        (272, "ac141fd7b0a0ffcd2e967254d508da3ec616596493c36fa304425647d90e6de5"),
        (273, "16192ea86793083e47731cb3c970600f04768414d92bc0540e54ce8607a0fce0"),
        (1000, "80cdc8dd52cbb3dbaea8f383209893fa2bb52efbd5aedbb4b26dcfe307fcdc9b"),
    ]

    @Test func matchesIndependentVectorsAcrossBlockBoundaries() {
        for (length, hex) in Self.vectors {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
            #expect(Keccak256.hash(message).hex == hex, "length \(length)")
        }
    }

    @Test func ethereumsKnownHashes() {
        #expect(Keccak256.hash([UInt8]()).hex == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
        #expect(Keccak256.hash(Array("abc".utf8)).hex == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")
        // The ERC-20 Transfer event's topic, as every explorer shows it.
        #expect(
            Keccak256.hash(Array("Transfer(address,address,uint256)".utf8)).hex
                == "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
    }

    @Test func isNotSHA3() {
        // SHA3-256("") differs only by the padding byte.
        #expect(Keccak256.hash([UInt8]()).hex != "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a")
    }

    @Test func partsHashAsTheirConcatenation() {
        #expect(Keccak256.hash([1, 2], [], [3]) == Keccak256.hash([1, 2, 3]))
    }
}
