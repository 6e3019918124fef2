// The whole-node simulator: see Docs/Simulation.md.
