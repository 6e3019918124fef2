import CLibUV
import CNettle
import CSecp256k1
import CSodium
import Testing

/// The C libraries link and initialise: the build's pkg-config and
/// modulemap wiring is right before any module relies on it.
@Suite struct SystemLibraryTests {
    @Test func libuvRunsAnEmptyLoop() {
        var loop = uv_loop_t()
        #expect(uv_loop_init(&loop) == 0)
        #expect(uv_run(&loop, UV_RUN_DEFAULT) == 0)
        #expect(uv_loop_close(&loop) == 0)
        #expect(uv_version() >= 0x01_2C_00)  // 1.44 or later, as in Debian 12
    }

    @Test func libsodiumInitialises() {
        #expect(sodium_init() >= 0)
        #expect(crypto_sign_bytes() == 64)
    }

    @Test func libsecp256k1HasItsRecoveryModule() {
        let context = secp256k1_context_create(UInt32(SECP256K1_CONTEXT_NONE))!
        
        var signature = secp256k1_ecdsa_recoverable_signature()
        let compact = [UInt8](repeating: 1, count: 64)
        #expect(secp256k1_ecdsa_recoverable_signature_parse_compact(context, &signature, compact, 0) == 1)
        secp256k1_context_destroy(context)
    }

    @Test func nettleExportsTheKeccakPermutation() {
        var state = sha3_state()
        nettle_sha3_permute(&state)
        #expect(state.a.0 != 0)
    }
}
