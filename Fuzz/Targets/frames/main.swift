import ParleyFuzzing

// libFuzzer target `fuzz-frames`: FuzzTargets.named("frames") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "frames")
