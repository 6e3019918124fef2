import ArgumentParser
import ParleyWire

/// Amounts on the command line are 128-bit decimal numbers, like every amount in Parley: a
/// deposit in wei can exceed what 64 bits hold.
extension Amount: ExpressibleByArgument {}
