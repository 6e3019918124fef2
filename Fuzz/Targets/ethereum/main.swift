import ParleyFuzzing

// libFuzzer target `fuzz-ethereum`: FuzzTargets.named("ethereum") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "ethereum")
