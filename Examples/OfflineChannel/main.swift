// offline-channel: two channel engines talking through an in-memory queue.
//
// The engine is a pure state machine; each side drives it through a
// `JournaledEngine`, which makes every signature durable in that side's
// journal (a real fsync'd directory) before handing back the messages to
// send. The whole protocol — opening, payments, a refused update,
// simultaneous proposals and a cooperative close — runs here without
// sockets. A real node adds a transport in place of the mailboxes.
//
//   swift run offline-channel [DIR]      # journals go to DIR/alice and DIR/bob
//   parley journal inspect DIR/alice     # then look at what was journaled

import Foundation
import ParleyChannel
import DequeModule
import ParleyCrypto
import ParleyJournal

/// One peer: its journaled engine plus a mailbox of messages addressed to it.
struct Peer {
    let name: String
    var engine: JournaledEngine
    var inbox = Deque<ChannelMessage>()
    var pendingDecisions = Deque<IncomingProposal>()
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
    case let .committed(signed, updates):
        let requests = updates.isEmpty ? "" : " (request \(updates.map(String.init).joined(separator: ", ")))"
        return "v\(signed.version) committed \(signed.state.allocation)" + requests
    case let .updateFailed(id, why): return "request \(id) failed: \(why)"
    default: return "\(event)"
    }
}

/// Both peers and the in-memory "network" between them.
struct Exchange {
    var peers: [Peer]

    /// Feeds one input to one peer and performs what it asks for, once its journal records are durable.
    mutating func input(_ input: EngineInput, to index: Int) throws {
        perform(try peers[index].engine.handleBlocking(input), by: index)
    }

    /// Performs effects the way a node would, in order. Journal records are already durable here.
    mutating func perform(_ effects: [Effect], by index: Int) {
        let name = peers[index].name
        for effect in effects {
            switch effect {
            case .journal:
                break  // JournaledEngine has already made these durable
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
    mutating func runUntilQuiet() throws {
        var moved = true
        while moved {
            moved = false
            if let waiting = peers.indices.first(where: { peers[$0].retryPending }),
                peers.allSatisfy({ $0.inbox.isEmpty && $0.pendingDecisions.isEmpty })
            {
                peers[waiting].retryPending = false
                try input(.retryDue, to: waiting)
                moved = true
            }
            for index in peers.indices {
                while let message = peers[index].inbox.popFirst() {
                    try input(.received(message), to: index)
                    moved = true
                }
                while let proposal = peers[index].pendingDecisions.popFirst() {
                    let decision = decide(proposal, me: peers[index].engine.engine.me)
                    try input(.decided(version: proposal.proposed.version, decision), to: index)
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
    let directory = CommandLine.arguments.dropFirst().first
        ?? FileManager.default.temporaryDirectory.appendingPathComponent("parley-offline-\(getpid())").path
    let aliceJournal = try Journal(directory: directory + "/alice")
    let bobJournal = try Journal(directory: directory + "/bob")
    defer {
        aliceJournal.close()
        bobJournal.close()
    }
    let alice = SigningKey()
    let bob = SigningKey()
    let params = try ChannelParams.random(proposer: alice.publicKey, responder: bob.publicKey)
    print("Channel \(params.id.shortID) between alice \(alice.publicKey.shortID) and bob \(bob.publicKey.shortID)")
    print("Journals: \(directory)/alice and \(directory)/bob")

    print("\n1. Alice proposes the channel with 100 each; Bob accepts.")
    let (aliceEngine, openEffects) = try await JournaledEngine.propose(
        params: params, allocation: Allocation(100, 100), key: alice, journal: aliceJournal)
    guard case let .send(.openProposal(proposal))? = openEffects.last else { throw ExampleError.noOpenProposal }
    let (bobEngine, acceptEffects) = try await JournaledEngine.accept(proposal, key: bob, journal: bobJournal)
    var exchange = Exchange(peers: [Peer(name: "alice", engine: aliceEngine), Peer(name: "bob", engine: bobEngine)])
    // Bob answered Alice's proposal directly; what is left to deliver is his accept.
    exchange.perform(acceptEffects, by: 1)
    try exchange.runUntilQuiet()

    print("\n2. Alice pays Bob 30, then 5.")
    try exchange.input(.update(1, .pay(amount: 30)), to: 0)
    try exchange.input(.update(2, .pay(amount: 5)), to: 0)
    try exchange.runUntilQuiet()

    let latest = exchange.peers[0].engine.engine.latest
    print("\n3. Alice asks Bob to hand back 50; his handler refuses and the version is burned.")
    var taken = latest.state.allocation
    taken[.first] += 50
    taken[.second] -= 50
    try exchange.input(.update(3, .replace(base: latest.version, allocation: taken, appData: [], isFinal: false)), to: 0)
    try exchange.runUntilQuiet()

    print("\n4. Both pay at the same moment: both proposals are burned, the first seat goes first.")
    try exchange.input(.update(4, .pay(amount: 1)), to: 0)
    try exchange.input(.update(5, .pay(amount: 2)), to: 1)
    try exchange.runUntilQuiet()

    print("\n5. Bob closes cooperatively with a final state.")
    try exchange.input(.update(6, .finalize), to: 1)
    try exchange.runUntilQuiet()

    let final = exchange.peers[0].engine.engine.latest
    let agree = final == exchange.peers[1].engine.engine.latest
    print("\nFinal: v\(final.version) \(final.state.allocation), final=\(final.state.isFinal); both agree: \(agree)")
    print("Alice's journal holds \(aliceJournal.statistics.records) records in \(aliceJournal.statistics.syncs) fsyncs.")
} catch {
    print("error: \(error)")
    exit(1)
}
