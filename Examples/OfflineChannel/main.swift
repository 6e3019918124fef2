// offline-channel: two channel engines talking through an in-memory queue.
//
// The engine is a pure state machine, so the whole protocol — opening,
// payments, a refused update, simultaneous proposals and a cooperative
// close — runs here without sockets, disks or clocks. A real node performs
// the same effects against a durable journal and a transport.
//
//   swift run offline-channel

import ParleyChannel
import ParleyCrypto

/// One peer: its engine plus a mailbox of messages addressed to it.
struct Peer {
    let name: String
    var engine: ChannelEngine
    var inbox: [ChannelMessage] = []
    var journal: [JournalRecord] = []
    var pendingDecisions: [IncomingProposal] = []
    /// Lost a simultaneous-proposal tie-break; retry once the other side has had its turn.
    var retryPending = false
}

/// The update handler: accept payments to me, refuse anything that takes from me.
func decide(_ proposal: IncomingProposal, me: ParticipantIndex) -> Decision {
    let before = proposal.current.allocation[me]
    let after = proposal.proposed.allocation[me]
    return after >= before ? .accept : .reject("that would take \(before - after) from me")
}

func describe(_ event: ChannelEvent) -> String {
    switch event {
    case let .opened(signed): return "channel open with \(signed.state.allocation)"
    case let .committed(signed, update):
        return "v\(signed.version) committed \(signed.state.allocation)" + (update.map { " (request \($0))" } ?? "")
    case let .updateFailed(id, why): return "request \(id) failed: \(why)"
    default: return "\(event)"
    }
}

/// Both peers and the in-memory "network" between them.
struct Exchange {
    var peers: [Peer]

    /// Feeds one input to one peer and performs what it asks for.
    mutating func input(_ input: EngineInput, to index: Int) {
        perform(peers[index].engine.handle(input), by: index)
    }

    /// Performs effects the way a node would, in order; a node makes each journal record durable before going on.
    mutating func perform(_ effects: [Effect], by index: Int) {
        let name = peers[index].name
        for effect in effects {
            switch effect {
            case let .journal(record):
                peers[index].journal.append(record)
            case let .send(message):
                peers[1 - index].inbox.append(message)
                print("  \(name) → \(peers[1 - index].name): \(message.kind)")
            case let .decide(proposal):
                peers[index].pendingDecisions.append(proposal)
            case let .notify(event):
                print("  \(name) hears: \(describe(event))")
            case .scheduleRetry:
                print("  \(name) backs off before retrying")
                peers[index].retryPending = true
            case let .disconnect(reason):
                print("  \(name) would drop the connection: \(reason)")
            }
        }
    }

    /// Delivers mail and handler decisions until nothing moves; backed-off retries
    /// fire only then, as a node's randomized retry timer would after a round trip.
    mutating func runUntilQuiet() {
        var moved = true
        while moved {
            moved = false
            if let waiting = peers.indices.first(where: { peers[$0].retryPending }),
                peers.allSatisfy({ $0.inbox.isEmpty && $0.pendingDecisions.isEmpty })
            {
                peers[waiting].retryPending = false
                input(.retryDue, to: waiting)
                moved = true
            }
            for index in peers.indices {
                while !peers[index].inbox.isEmpty {
                    input(.received(peers[index].inbox.removeFirst()), to: index)
                    moved = true
                }
                while !peers[index].pendingDecisions.isEmpty {
                    let proposal = peers[index].pendingDecisions.removeFirst()
                    let decision = decide(proposal, me: peers[index].engine.me)
                    input(.decided(version: proposal.proposed.version, decision), to: index)
                    moved = true
                }
            }
        }
    }
}

enum ExampleError: Error {
    case noOpenProposal
}

do {
    let alice = SigningKey()
    let bob = SigningKey()
    let params = try ChannelParams.random(proposer: alice.publicKey, responder: bob.publicKey)
    print("Channel \(params.id.shortID) between alice \(alice.publicKey.shortID) and bob \(bob.publicKey.shortID)")

    print("\n1. Alice proposes the channel with 100 each; Bob accepts.")
    let (aliceEngine, openEffects) = try ChannelEngine.propose(
        params: params, allocation: Allocation(100, 100), key: alice)
    guard case let .send(.openProposal(proposal))? = openEffects.last else { throw ExampleError.noOpenProposal }
    let (bobEngine, acceptEffects) = try ChannelEngine.accept(proposal, key: bob)
    var exchange = Exchange(peers: [Peer(name: "alice", engine: aliceEngine), Peer(name: "bob", engine: bobEngine)])
    // Bob's engine was built from Alice's proposal directly, so only Alice's journal records are performed.
    exchange.perform(openEffects.filter { if case .send = $0 { false } else { true } }, by: 0)
    exchange.perform(acceptEffects, by: 1)
    exchange.runUntilQuiet()

    print("\n2. Alice pays Bob 30, then 5.")
    exchange.input(.update(1, .pay(amount: 30)), to: 0)
    exchange.input(.update(2, .pay(amount: 5)), to: 0)
    exchange.runUntilQuiet()

    let latest = exchange.peers[0].engine.latest
    print("\n3. Alice asks Bob to hand back 50; his handler refuses and the version is burned.")
    var taken = latest.state.allocation
    taken[.first] += 50
    taken[.second] -= 50
    exchange.input(.update(3, .replace(base: latest.version, allocation: taken, appData: [], isFinal: false)), to: 0)
    exchange.runUntilQuiet()

    print("\n4. Both pay at the same moment: both proposals are burned, the first seat goes first.")
    exchange.input(.update(4, .pay(amount: 1)), to: 0)
    exchange.input(.update(5, .pay(amount: 2)), to: 1)
    exchange.runUntilQuiet()

    print("\n5. Bob closes cooperatively with a final state.")
    exchange.input(.update(6, .finalize), to: 1)
    exchange.runUntilQuiet()

    let final = exchange.peers[0].engine.latest
    let agree = exchange.peers[0].engine.latest == exchange.peers[1].engine.latest
    print("\nFinal: v\(final.version) \(final.state.allocation), final=\(final.state.isFinal); both agree: \(agree)")
    print("Alice journaled \(exchange.peers[0].journal.count) records, Bob \(exchange.peers[1].journal.count).")
} catch {
    print("error: \(error)")
}
