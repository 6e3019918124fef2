import ParleyFuzzing

// libFuzzer target `fuzz-handshake`: FuzzTargets.named("handshake") (Docs/Architecture.md, "Fuzzing").
FuzzDriver.main(named: "handshake")
