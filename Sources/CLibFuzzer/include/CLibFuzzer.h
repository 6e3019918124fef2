#ifndef PARLEY_CLIBFUZZER_H
#define PARLEY_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for programs that have their own `main` (libFuzzer's "no main"
/// runtime, libclang_rt.fuzzer_no_main). It parses libFuzzer's flags from argv and calls
/// `callback` with each input. Only fuzz builds link it (Tools/fuzz/fuzz.py); nothing in
/// the normal build calls it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
