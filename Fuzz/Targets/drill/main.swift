import ParleyFuzzing

// libFuzzer target `fuzz-drill`: FuzzTargets.named("drill") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "drill")
