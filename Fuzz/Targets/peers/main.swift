import ParleyFuzzing

// libFuzzer target `fuzz-peers`: FuzzTargets.named("peers") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "peers")
