import ParleyFuzzing

// libFuzzer target `fuzz-wire`: FuzzTargets.named("wire") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "wire")
