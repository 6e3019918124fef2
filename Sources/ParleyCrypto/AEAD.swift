import CSodium

/// Authenticated encryption: XChaCha20-Poly1305 (IETF construction), as libsodium's
/// `crypto_aead_xchacha20poly1305_ietf_*`.
///
/// Contract: a (key, nonce) pair must never seal two different messages. Reusing one
/// reveals the XOR of the plaintexts and lets an attacker forge tags. The transport meets
/// this with one fresh key per session and direction and a counter nonce
/// (`FrameSealer` in ParleyTransport).
///
/// Keys and nonces always come from the caller's own code, never from a peer, so a key or
/// nonce of the wrong size is a programming error and stops the process; every problem with
/// the *ciphertext* is a thrown ``CryptoError/authenticationFailed``.
public enum AEAD {
    public static let keyBytes = 32
    public static let nonceBytes = 24
    public static let tagBytes = 16

    /// `plaintext` encrypted and authenticated together with `associatedData`:
    /// ciphertext followed by the 16-byte tag, so `plaintext.count + tagBytes` bytes.
    public static func seal(
        _ plaintext: [UInt8], key: SecretBytes, nonce: [UInt8], associatedData: [UInt8] = []
    ) -> [UInt8] {
        checkSizes(key: key, nonce: nonce)
        Sodium.ensureInitialized()
        var sealed = [UInt8](repeating: 0, count: plaintext.count + tagBytes)
        var sealedCount: UInt64 = 0
        key.withBytePointer { keyPointer in
            withNonNullPointer(to: plaintext) { plainPointer, plainCount in
                withNonNullPointer(to: associatedData) { adPointer, adCount in
                    _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                        &sealed, &sealedCount, plainPointer, UInt64(plainCount),
                        adPointer, UInt64(adCount), nil, nonce, keyPointer)
                }
            }
        }
        return sealed
    }

    /// The plaintext of `ciphertext`, or ``CryptoError/authenticationFailed`` if any bit of the
    /// ciphertext, tag, nonce, key or associated data differs from what was sealed.
    /// Nothing is decrypted unless the tag verifies.
    public static func open(
        _ ciphertext: [UInt8], key: SecretBytes, nonce: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        checkSizes(key: key, nonce: nonce)
        guard ciphertext.count >= tagBytes else { throw .authenticationFailed }
        Sodium.ensureInitialized()
        let plainCount = ciphertext.count - tagBytes
        // One spare byte so the output pointer is real even for an empty plaintext.
        var plain = [UInt8](repeating: 0, count: plainCount + 1)
        var openedCount: UInt64 = 0
        let result = key.withBytePointer { keyPointer in
            withNonNullPointer(to: associatedData) { adPointer, adCount in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    &plain, &openedCount, nil, ciphertext, UInt64(ciphertext.count),
                    adPointer, UInt64(adCount), nonce, keyPointer)
            }
        }
        guard result == 0, openedCount == UInt64(plainCount) else { throw .authenticationFailed }
        plain.removeLast()
        return plain
    }

    /// A 32-byte AEAD key for one purpose, derived from a key-agreement secret and the
    /// transcript it was agreed in.
    ///
    /// The construction is `BLAKE2b-256(UInt8(tag.count) || tag || secret || transcript)`:
    /// exactly `Blake2b.hash256(domain:_:)` over `secret || transcript.bytes`,
    /// computed here inside secret memory so neither the input secret nor the derived key is
    /// ever copied into ordinary arrays. BLAKE2b is a PRF keyed by its input's secret part,
    /// and different domains give independent keys from one secret; binding the transcript
    /// means two sessions that saw any different byte get unrelated keys.
    public static func deriveKey(_ domain: DigestDomain, from secret: SecretBytes, transcript: Digest) -> SecretBytes {
        Sodium.ensureInitialized()
        let prefix = [UInt8(domain.tag.utf8.count)] + Array(domain.tag.utf8)
        let inputCount = prefix.count + secret.count + transcript.bytes.count
        let input = SecretBytes(count: inputCount) { buffer in
            var offset = 0
            func append(_ bytes: UnsafeRawBufferPointer) {
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + bytes.count]).copyMemory(from: bytes)
                offset += bytes.count
            }
            prefix.withUnsafeBytes(append)
            secret.withUnsafeBytes(append)
            transcript.bytes.withUnsafeBytes(append)
        }
        return SecretBytes(count: keyBytes) { out in
            guard let outBase = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            input.withBytePointer { inputPointer in
                _ = crypto_generichash(outBase, out.count, inputPointer, UInt64(inputCount), nil, 0)
            }
        }
    }

    private static func checkSizes(key: SecretBytes, nonce: [UInt8]) {
        precondition(key.count == keyBytes, "AEAD key must be \(keyBytes) bytes, got \(key.count)")
        precondition(nonce.count == nonceBytes, "AEAD nonce must be \(nonceBytes) bytes, got \(nonce.count)")
    }
}
