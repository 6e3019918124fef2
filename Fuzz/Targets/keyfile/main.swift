import ParleyFuzzing

// libFuzzer target `fuzz-keyfile`: FuzzTargets.named("keyfile") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "keyfile")
