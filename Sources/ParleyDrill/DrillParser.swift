import ParleyChannel
import Yams

/// Reads the drill format (Docs/Drills.md). Every problem is a `DrillFileError` naming the
/// line, so a person can fix the file without guessing.
public enum DrillParser {
    public static let phases = ["open", "disputed", "concluded", "withdrawn"]
    public static let stepNames = [
        "pay", "keep", "register", "close", "dispute", "silence", "wake", "disconnect", "reconnect", "crash",
        "restart", "advance", "tamper", "hold-final", "move", "progress-final", "expect",
    ]
    /// Most payments one `pay` step may make.
    public static let maxCount = 1_000_000

    public static func parse(_ text: String, path: String) throws(DrillFileError) -> Drill {
        try Reader(path: path).drill(text)
    }
}

private struct Reader {
    let path: String

    func fail(_ line: Int, _ message: String) -> DrillFileError {
        DrillFileError(path: path, line: line, message: message)
    }

    func line(_ node: Node?) -> Int { node?.mark?.line ?? 0 }

    func drill(_ text: String) throws(DrillFileError) -> Drill {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { throw fail(0, "the file is empty") }
            root = composed
        } catch let error as DrillFileError {
            throw error
        } catch let error as YamlError {
            throw yamlError(error)
        } catch {
            throw fail(0, "not YAML: \(error)")
        }
        guard let top = root.mapping else {
            throw fail(line(root), "a drill is a mapping with name, challenge, peers and steps")
        }
        try allowOnly(["name", "description", "challenge", "peers", "steps", "app", "disconnect-grace"], in: top, what: "a drill")
        let name = try string(required("name", in: top, at: line(root)), "name")
        let description = try top["description"].map { node throws(DrillFileError) in try string(node, "description") } ?? ""
        let challengeNode = try required("challenge", in: top, at: line(root))
        let challenge = try uint(challengeNode, "challenge")
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw fail(line(challengeNode), "challenge must be \(ChannelParams.challengeDurationRange) seconds")
        }
        let peersNode = try required("peers", in: top, at: line(root))
        guard let peersMap = peersNode.mapping, peersMap.count == 2 else {
            throw fail(line(peersNode), "`peers` must map exactly two names to their deposits, e.g. {alice: 100, bob: 100}")
        }
        var peers: [Drill.Peer] = []
        for (key, value) in peersMap {
            let peerName = try string(key, "a peer name")
            guard !peerName.isEmpty, peerName.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw fail(line(key), "peer name `\(peerName)` may hold only letters, digits, - and _")
            }
            guard peerName != "chain", peerName != "drill" else { throw fail(line(key), "`\(peerName)` is reserved; pick another name") }
            peers.append(Drill.Peer(name: peerName, deposit: try uint(value, "\(peerName)'s deposit")))
        }
        guard peers[0].name != peers[1].name else { throw fail(line(peersNode), "the two peers need different names") }
        let stepsNode = try required("steps", in: top, at: line(root))
        guard let sequence = stepsNode.sequence else { throw fail(line(stepsNode), "`steps` must be a list (`- pay: {...}`)") }
        var drill = Drill(path: path, name: name, description: description, challenge: challenge, peers: peers, steps: [])
        if let appNode = top["app"] {
            switch try string(appNode, "app") {
            case "payment": drill.game = false
            case "tictactoe": drill.game = true
            case let other: throw fail(line(appNode), "unknown app `\(other)`; apps are payment, tictactoe")
            }
        }
        if let graceNode = top["disconnect-grace"] {
            let grace = try uint(graceNode, "disconnect-grace")
            guard (1...(7 * 24 * 3600)).contains(grace) else { throw fail(line(graceNode), "disconnect-grace must be 1...604800 seconds") }
            drill.disconnectGrace = grace
        }
        var labels: Set<String> = []
        for node in sequence {
            let action = try step(node, drill: drill, labels: &labels)
            drill.steps.append(Drill.Step(line: line(node), action: action))
        }
        return drill
    }

    private func yamlError(_ error: YamlError) -> DrillFileError {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return fail(mark.line, "not valid YAML: \(problem)")
        default:
            return fail(0, "not valid YAML: \(error)")
        }
    }

    // MARK: Steps

    private func step(_ node: Node, drill: Drill, labels: inout Set<String>) throws(DrillFileError) -> Drill.Action {
        let at = line(node)
        let name: String
        let argument: Node?
        if let scalar = node.scalar {
            name = scalar.string
            argument = nil
        } else if let mapping = node.mapping, mapping.count == 1, let (key, value) = mapping.first {
            name = try string(key, "a step name")
            argument = value
        } else {
            throw fail(at, "each step is a one-key mapping like `- pay: {from: alice, amount: 10}` or a bare name like `- close`")
        }
        guard DrillParser.stepNames.contains(name) else {
            throw fail(at, "unknown step `\(name)`; steps are \(DrillParser.stepNames.joined(separator: ", "))")
        }
        // `- close: {}` and `- close:` (null) both mean no arguments.
        let isEmpty = argument == nil || argument?.null != nil || argument?.mapping?.isEmpty == true
        let fields = isEmpty ? nil : argument?.mapping
        let scalarArgument = isEmpty ? nil : argument?.scalar.map { _ in argument! }

        func peerName(_ node: Node, _ what: String) throws(DrillFileError) -> String {
            let text = try string(node, what)
            guard drill.peer(named: text) != nil else {
                throw fail(line(node), "`\(text)` is not a peer of this drill (\(drill.peers.map(\.name).joined(separator: ", ")))")
            }
            return text
        }
        func need(_ key: String, _ mapping: Node.Mapping) throws(DrillFileError) -> Node {
            guard let value = mapping[key] else { throw fail(at, "`\(name)` needs `\(key)`") }
            return value
        }
        func mapping(_ usage: String) throws(DrillFileError) -> Node.Mapping {
            guard let fields else { throw fail(at, "`\(name)` needs \(usage)") }
            return fields
        }
        /// A step about one peer: `- crash: bob` or `- crash: {peer: bob}`.
        func onePeer() throws(DrillFileError) -> String {
            if let scalarArgument { return try peerName(scalarArgument, "\(name)'s peer") }
            let fields = try mapping("a peer: `- \(name): bob`")
            try allowOnly(["peer"], in: fields, what: "`\(name)`")
            return try peerName(need("peer", fields), "peer")
        }
        /// A step that names a state a peer holds: `{peer, as: LABEL}`; the label becomes
        /// usable by later `register` steps.
        func labelledPeer() throws(DrillFileError) -> (peer: String, label: String) {
            let fields = try mapping("{peer, as}")
            try allowOnly(["peer", "as"], in: fields, what: "`\(name)`")
            let label = try string(need("as", fields), "as")
            guard label != "latest" else { throw fail(at, "`latest` is reserved; pick another label") }
            labels.insert(label)
            return (try peerName(need("peer", fields), "peer"), label)
        }
        func noArguments() throws(DrillFileError) {
            guard isEmpty else { throw fail(at, "`\(name)` takes no arguments: write `- \(name)`") }
        }

        switch name {
        case "pay":
            let fields = try mapping("{from, amount, count?}")
            try allowOnly(["from", "amount", "count"], in: fields, what: "`pay`")
            let from = try peerName(need("from", fields), "from")
            let amount = try uint(need("amount", fields), "amount")
            guard amount > 0 else { throw fail(at, "amount must be at least 1") }
            let count = try fields["count"].map { node throws(DrillFileError) in try uint(node, "count") } ?? 1
            guard count >= 1, count <= UInt64(DrillParser.maxCount) else {
                throw fail(at, "count must be 1...\(DrillParser.maxCount)")
            }
            return .pay(from: from, amount: amount, count: Int(count))
        case "keep":
            let (peer, label) = try labelledPeer()
            return .keep(peer: peer, label: label)
        case "register":
            let fields = try mapping("{peer, state: LABEL|latest}")
            try allowOnly(["peer", "state"], in: fields, what: "`register`")
            let peer = try peerName(need("peer", fields), "peer")
            let label = try string(need("state", fields), "state")
            if label == "latest" { return .register(peer: peer, state: .latest) }
            guard labels.contains(label) else {
                throw fail(at, "no state was kept as `\(label)` before this step (add `- keep: {peer: \(peer), as: \(label)}` earlier)")
            }
            return .register(peer: peer, state: .label(label))
        case "close":
            if let scalarArgument { return .close(by: try peerName(scalarArgument, "close's peer")) }
            guard let fields else { return .close(by: nil) }
            try allowOnly(["peer"], in: fields, what: "`close`")
            return .close(by: try peerName(need("peer", fields), "peer"))
        case "dispute": return .dispute(peer: try onePeer())
        case "silence": return .silence(try onePeer())
        case "wake": return .wake(try onePeer())
        case "crash": return .crash(try onePeer())
        case "restart": return .restart(try onePeer())
        case "disconnect":
            try noArguments()
            return .disconnect
        case "reconnect":
            try noArguments()
            return .reconnect
        case "advance":
            if let scalarArgument { return .advance(try uint(scalarArgument, "advance")) }
            let fields = try mapping("seconds: `- advance: 30`")
            try allowOnly(["seconds"], in: fields, what: "`advance`")
            return .advance(try uint(need("seconds", fields), "seconds"))
        case "tamper":
            let fields = try mapping("{from, kind}")
            try allowOnly(["from", "kind"], in: fields, what: "`tamper`")
            let from = try peerName(need("from", fields), "from")
            let kindText = try string(need("kind", fields), "kind")
            guard let kind = Tampering(rawValue: kindText) else {
                throw fail(at, "unknown tamper kind `\(kindText)`; kinds are \(Tampering.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return .tamper(from: from, kind: kind.rawValue)
        case "hold-final":
            let (peer, label) = try labelledPeer()
            return .holdFinal(peer: peer, label: label)
        case "move":
            guard drill.game else { throw fail(at, "`move` needs a game: add `app: tictactoe` at the top") }
            let fields = try mapping("{peer, cell}")
            try allowOnly(["peer", "cell"], in: fields, what: "`move`")
            let cell = try uint(need("cell", fields), "cell")
            guard cell < 9 else { throw fail(at, "cell must be 0...8") }
            return .move(peer: try peerName(need("peer", fields), "peer"), cell: Int(cell))
        case "progress-final":
            guard drill.game else { throw fail(at, "`progress-final` needs a game: add `app: tictactoe` at the top") }
            return .progressFinal(peer: try onePeer())
        default:  // expect
            guard let fields, !fields.isEmpty else {
                throw fail(at, "`expect` needs at least one of chain, payout, peer, rejected, error")
            }
            return .expect(try expectation(fields, at: at, peerName: peerName))
        }
    }

    private func expectation(
        _ fields: Node.Mapping, at: Int, peerName: (Node, String) throws(DrillFileError) -> String
    ) throws(DrillFileError) -> Drill.Expectation {
        try allowOnly(["chain", "payout", "peer", "rejected", "error"], in: fields, what: "`expect`")
        var expectation = Drill.Expectation()
        if let chain = fields["chain"] {
            guard let map = chain.mapping, !map.isEmpty else { throw fail(line(chain), "`chain` needs {version?, phase?}") }
            try allowOnly(["version", "phase"], in: map, what: "`chain`")
            expectation.chainVersion = try map["version"].map { node throws(DrillFileError) in try uint(node, "version") }
            if let phase = map["phase"] {
                let text = try string(phase, "phase")
                guard DrillParser.phases.contains(text) else {
                    throw fail(line(phase), "phase must be one of \(DrillParser.phases.joined(separator: ", "))")
                }
                expectation.chainPhase = text
            }
        }
        if let payout = fields["payout"] {
            expectation.payout = try amounts(payout, "payout", peerName: peerName)
        }
        if let peer = fields["peer"] {
            guard let map = peer.mapping else { throw fail(line(peer), "`peer` needs {name, version?, balances?}") }
            try allowOnly(["name", "version", "balances"], in: map, what: "`peer`")
            guard let nameNode = map["name"] else { throw fail(line(peer), "`peer` needs `name`") }
            var check = Drill.PeerExpectation(name: try peerName(nameNode, "name"))
            check.version = try map["version"].map { node throws(DrillFileError) in try uint(node, "version") }
            if let balances = map["balances"] { check.balances = try amounts(balances, "balances", peerName: peerName) }
            expectation.peer = check
        }
        if let rejected = fields["rejected"] {
            guard let value = rejected.bool else { throw fail(line(rejected), "`rejected` is true or false") }
            expectation.rejected = value
        }
        if let error = fields["error"] { expectation.error = try string(error, "error") }
        return expectation
    }

    private func amounts(
        _ node: Node, _ what: String, peerName: (Node, String) throws(DrillFileError) -> String
    ) throws(DrillFileError) -> [String: UInt64] {
        guard let map = node.mapping, !map.isEmpty else { throw fail(line(node), "`\(what)` maps peer names to amounts") }
        var result: [String: UInt64] = [:]
        for (key, value) in map { result[try peerName(key, "a peer name")] = try uint(value, "\(what) amount") }
        return result
    }

    // MARK: Scalars

    private func allowOnly(_ keys: Set<String>, in mapping: Node.Mapping, what: String) throws(DrillFileError) {
        for key in mapping.keys {
            let text = key.string ?? "?"
            guard keys.contains(text) else {
                throw fail(line(key), "\(what) has no field `\(text)` (fields: \(keys.sorted().joined(separator: ", ")))")
            }
        }
    }

    private func required(_ key: String, in mapping: Node.Mapping, at: Int) throws(DrillFileError) -> Node {
        guard let node = mapping[key] else { throw fail(at, "missing `\(key)`") }
        return node
    }

    private func string(_ node: Node, _ what: String) throws(DrillFileError) -> String {
        guard let scalar = node.scalar else { throw fail(line(node), "\(what) must be text") }
        return scalar.string
    }

    private func uint(_ node: Node, _ what: String) throws(DrillFileError) -> UInt64 {
        guard let scalar = node.scalar, let value = UInt64(scalar.string) else {
            throw fail(line(node), "\(what) must be a whole number ≥ 0, not `\(node.scalar?.string ?? "a list or mapping")`")
        }
        return value
    }
}
