extension SigningKey {
    /// The secp256k1 key this identity settles Ethereum channels with: derived from the
    /// identity's 32-byte seed, so one key file (one seed) holds both keys.
    ///
    /// `secret = BLAKE2b-256("parley/settlement-key/secp256k1/v1", seed ‖ counter)`, with the
    /// one-byte counter from 0 upward until the result is a valid secret (non-zero and below
    /// the curve order; the first try fails with probability about 2⁻¹²⁸). The domain tag
    /// keeps the two keys independent: knowing the Ethereum key reveals nothing of the seed.
    /// The same seed always gives the same account, so backing up the key file backs up both.
    /// The hash input is built in secret memory; the 32-byte result passes through one
    /// ordinary buffer (the digest) on its way into the key's `SecretBytes`.
    public var settlementKey: EthereumSigningKey {
        withSeed { seed in
            for counter in UInt8.min...UInt8.max {
                let input = SecretBytes(count: seed.count + 1) { buffer in
                    buffer.copyBytes(from: seed)
                    buffer[seed.count] = counter
                }
                let digest = input.withUnsafeBytes { Blake2b.hash256(domain: .settlementKey, $0) }
                if let key = try? EthereumSigningKey(secret: SecretBytes(copying: digest.bytes)) { return key }
            }
            // 256 consecutive invalid secrets from a hash: not reachable.
            preconditionFailure("no valid secp256k1 secret derived from this seed")
        }
    }
}
