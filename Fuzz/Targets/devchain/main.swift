import ParleyFuzzing

// libFuzzer target `fuzz-devchain`: FuzzTargets.named("devchain") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "devchain")
