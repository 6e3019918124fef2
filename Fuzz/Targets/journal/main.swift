import ParleyFuzzing

// libFuzzer target `fuzz-journal`: FuzzTargets.named("journal") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "journal")
