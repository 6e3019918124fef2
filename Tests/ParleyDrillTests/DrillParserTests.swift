import Foundation
import ParleyDrill
import ParleyNode
import Testing

/// The drill format: what parses, and that every mistake names its line.
@Suite("drill files")
struct DrillParserTests {
    static let example = """
        name: stale-state-cheat
        description: Bob registers an old state; Alice's watcher refutes it.
        challenge: 60
        peers:
          alice: 100
          bob: 100
        steps:
          - pay: {from: alice, amount: 10, count: 3}
          - keep: {peer: bob, as: old}
          - pay: {from: bob, amount: 5, count: 2}
          - register: {peer: bob, state: old}
          - advance: 30
          - expect: {chain: {version: 5, phase: disputed}}
          - advance: 31
          - expect: {payout: {alice: 80, bob: 120}}
        """

    @Test("the issue's example parses into the steps it says")
    func example() throws {
        let drill = try DrillParser.parse(Self.example, path: "x.yaml")
        #expect(drill.name == "stale-state-cheat")
        #expect(drill.challenge == 60)
        #expect(drill.peers == [Drill.Peer(name: "alice", deposit: 100), Drill.Peer(name: "bob", deposit: 100)])
        #expect(drill.steps.map(\.line) == [8, 9, 10, 11, 12, 13, 14, 15])
        #expect(drill.steps[0].action == .pay(from: "alice", amount: 10, count: 3))
        #expect(drill.steps[1].action == .keep(peer: "bob", label: "old"))
        #expect(drill.steps[3].action == .register(peer: "bob", state: .label("old")))
        #expect(drill.steps[4].action == .advance(30))
        var chain = Drill.Expectation()
        chain.chainVersion = 5
        chain.chainPhase = "disputed"
        #expect(drill.steps[5].action == .expect(chain))
        var payout = Drill.Expectation()
        payout.payout = ["alice": 80, "bob": 120]
        #expect(drill.steps[7].action == .expect(payout))
    }

    @Test("short forms: bare names, one peer, time, empty mappings")
    func shortForms() throws {
        let drill = try DrillParser.parse("""
            name: forms
            challenge: 10
            peers: {a: 1, b: 2}
            steps:
              - close
              - close: {}
              - close: b
              - silence: b
              - wake: {peer: b}
              - crash: a
              - restart: a
              - disconnect
              - reconnect: {}
              - advance: {seconds: 5}
              - dispute: a
              - tamper: {from: a, kind: version-skip}
              - expect: {rejected: true}
              - expect: {error: boom, peer: {name: a, version: 3, balances: {a: 1, b: 2}}}
            """, path: "forms.yaml")
        #expect(drill.steps.map(\.action) == [
            .close(by: nil), .close(by: nil), .close(by: "b"), .silence("b"), .wake("b"), .crash("a"), .restart("a"),
            .disconnect, .reconnect, .advance(5), .dispute(peer: "a"), .tamper(from: "a", kind: "version-skip"),
            .expect(Drill.Expectation(rejected: true)),
            .expect(Drill.Expectation(
                peer: Drill.PeerExpectation(name: "a", version: 3, balances: ["a": 1, "b": 2]), error: "boom")),
        ])
    }

    @Test("every mistake is reported with its line", arguments: [
        ("steps:\n  - pya: {from: alice, amount: 1}", 8, "unknown step `pya`"),
        ("steps:\n  - pay: {from: carol, amount: 1}", 8, "`carol` is not a peer"),
        ("steps:\n  - pay: {from: alice, amout: 1}", 8, "has no field `amout`"),
        ("steps:\n  - pay: {from: alice, amount: -3}", 8, "whole number"),
        ("steps:\n  - register: {peer: bob, state: old}", 8, "no state was kept as `old`"),
        ("steps:\n  - tamper: {from: alice, kind: nonsense}", 8, "unknown tamper kind"),
        ("steps:\n  - expect: {chain: {phase: sideways}}", 8, "phase must be one of"),
        ("steps:\n  - close: alice\n  - disconnect: bob", 9, "takes no arguments"),
        // libyaml notices the unclosed mapping at the next token, on the line after.
        ("steps:\n  - pay: {from: alice, amount: 1\n  - close", 10, "not valid YAML"),
        ("steps:\n  - {pay: {from: alice, amount: 1}, close: {}}", 8, "one-key mapping"),
    ])
    func mistakes(steps: String, line: Int, message: String) {
        let text = "name: wrong\ndescription: d\nchallenge: 60\npeers:\n  alice: 100\n  bob: 100\n" + steps
        do {
            _ = try DrillParser.parse(text, path: "wrong.yaml")
            Issue.record("parsed a broken drill")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix("wrong.yaml:\(line): "))
        }
    }

    @Test("the top level is checked too")
    func topLevel() {
        let cases: [(String, String)] = [
            ("name: x\nchallenge: 60\npeers: {a: 1}\nsteps: []", "exactly two"),
            ("name: x\nchallenge: 0\npeers: {a: 1, b: 1}\nsteps: []", "challenge must be"),
            ("name: x\npeers: {a: 1, b: 1}\nsteps: []", "missing `challenge`"),
            ("name: x\nchallenge: 60\npeers: {a: 1, b: 1}\nsteps: []\nextra: 1", "no field `extra`"),
            ("", "empty"),
            ("- just\n- a list", "a drill is a mapping"),
        ]
        for (text, message) in cases {
            #expect(throws: DrillFileError.self, "\(message)") { try DrillParser.parse(text, path: "t.yaml") }
            do { _ = try DrillParser.parse(text, path: "t.yaml") } catch {
                #expect(error.message.contains(message), "\(error)")
            }
        }
    }

    @Test("every drill in Examples/Drills parses")
    func library() throws {
        let files = try DrillLibrary.files()
        #expect(files.count >= 15)
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            _ = try DrillParser.parse(text, path: file)
        }
    }
}

/// Finds Examples/Drills from the test's source location.
enum DrillLibrary {
    static var directory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Examples/Drills").path
    }

    static func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }.sorted()
            .map { directory + "/" + $0 }
    }
}
