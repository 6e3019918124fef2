import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyEthereum
import ParleyWire

extension FuzzTargets {
    /// What an Ethereum JSON-RPC endpoint answers, and the ABI data inside: blocks,
    /// receipts, logs of the adjudicator, revert reasons. A node we do not control (or a
    /// contract someone else deployed) can answer anything.
    ///
    /// Input: 1 byte of mode. JSON mode reads the rest as a reply body and hands its result
    /// to every reader the adapter has. Log mode builds a log from topics (a known event's,
    /// or raw) and data. Revert mode reads the rest as revert data. Checks: every failure is
    /// an `EthereumRPCError`; a decoded event names the channel of its topic, an `Opened`
    /// event's parameters derive that channel's id, a registered state is that channel's;
    /// a revert reason is at most 1,024 bytes.
    static let ethereum = FuzzTarget(
        name: "ethereum",
        summary: "JSON-RPC reply bodies (blocks, receipts, logs), adjudicator event ABI data, revert data",
        maxInputBytes: 8 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let mode = input.byte()
            switch mode % 3 {
            case 0: try reply(Data(input.rest()))
            case 1:
                let topicCount = Int(input.byte() % 4)
                var topics: [Digest] = []
                for position in 0..<topicCount {
                    let pick = input.byte()
                    if position == 0, pick < 0x80 {
                        topics.append(AdjudicatorABI.Topic.all[Int(pick) % AdjudicatorABI.Topic.all.count])
                    } else {
                        let word = input.take(32)
                        if let digest = try? Digest(bytes: word + [UInt8](repeating: 0, count: 32 - word.count)) { topics.append(digest) }
                    }
                }
                try log(topics: topics, data: input.rest())
            default:
                let data = input.rest()
                let reason = TransactionSender.revertString(.rpc(code: 3, message: "execution reverted", data: data))
                try Fuzz.check((reason?.utf8.count ?? 0) <= 1_024, "a revert reason of \(reason?.utf8.count ?? 0) bytes")
            }
        },
        seeds: { EthereumSeeds.all })

    static let fuzzDomain: SettlementDomain = (try? SettlementDomain(chainID: 1337, contract: EthereumSeeds.adjudicator.bytes)) ?? .embedded

    private static func log(topics: [Digest], data: [UInt8]) throws(FuzzFinding) {
        guard let (channel, event) = try? AdjudicatorABI.decode(topics: topics, data: data, domain: fuzzDomain) else { return }
        try Fuzz.check(topics.count == 2 && channel == ChannelID(digest: topics[1]), "an event names a channel its topics do not")
        try check(event, of: channel)
    }

    private static func check(_ event: AdjudicatorABI.Event, of channel: ChannelID) throws(FuzzFinding) {
        switch event {
        case let .opened(opening):
            try Fuzz.check(opening.params.id == channel, "an Opened event with params of another channel")
        case let .chain(_, registered):
            if let registered { try Fuzz.check(registered.channelID == channel, "a registered state of another channel") }
        }
    }

    private static func reply(_ body: Data) throws(FuzzFinding) {
        let result: JSONValue
        do {
            result = try JSONRPCClient.result(ofReply: body, method: "eth_fuzz")
        } catch {
            if case .rpc = error { _ = TransactionSender.revertString(error) }
            return
        }
        var values = [result]
        if let array = result.array { values += array.prefix(16) }
        for value in values {
            _ = try? EthereumChain.block(from: value)
            _ = try? TransactionSender.receipt(from: value, hash: Keccak256.hash([]))
            if let found = try? EthereumChain.log(from: value, adjudicator: EthereumSeeds.adjudicator, domain: fuzzDomain) {
                try check(found.event, of: found.channel)
            }
        }
    }
}
