/// The drill corpus starts from the shipped drills (`Examples/Drills`, copied into
/// `Fuzz/Corpus/drill` by `Tools/fuzz/fuzz.py seed`) and these shapes the shipped ones do not
/// use: a flow-style document, a step list that is not a list, a refused step.
enum DrillSeeds {
    static let files: [[UInt8]] = [
        """
        name: short
        challenge: 30
        peers: {alice: 50, bob: 70}
        steps: [{pay: {from: alice, amount: 5}}, {expect: {balance: {alice: 45, bob: 75}}}]
        """,
        "name: not a list\npeers:\n  alice: 1\n  bob: 1\nsteps: pay\n",
        """
        name: refused
        peers:
          alice: 10
          bob: 10
        steps:
          - pay: {from: alice, amount: 11}
          - expect: {error: insufficient}
          - restart: {peer: bob}
        """,
    ].map { Array($0.utf8) }
}
