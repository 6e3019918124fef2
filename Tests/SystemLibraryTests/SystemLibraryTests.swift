import CLibUV
import CSodium
import Testing

/// The two C libraries link and initialise: the build's pkg-config and
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
}
