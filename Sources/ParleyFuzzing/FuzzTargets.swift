/// Every fuzz target, one per family of decoders that read bytes from a peer, a file or a
/// chain (Docs/Architecture.md, "Fuzzing", says how to add one).
package enum FuzzTargets {
    package static let all: [FuzzTarget] = [frames, handshake, wire, journal, devchain, keyFile, peers, drill, ethereum]

    package static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}
