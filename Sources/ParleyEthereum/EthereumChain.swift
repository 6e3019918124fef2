import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyLocks
import ParleySettlement
import ParleyWire

/// How an `EthereumChain` talks to its endpoint. Defaults suit a public chain's pace;
/// the local EVM's tests shorten the polls.
public struct EthereumChainOptions: Sendable {
    /// The block the adjudicator was deployed in: event scans start there.
    public var fromBlock: UInt64 = 0
    /// A transaction counts, and an event is delivered, once this many blocks hold it
    /// (1: as soon as it is mined). Reorganisations deeper than this are detected by block
    /// hash and replayed (Docs/Ethereum.md, "Events and reorganisations").
    public var confirmations: UInt64 = 1
    /// How often receipts, new blocks and logs are polled.
    public var pollInterval: Duration = .milliseconds(500)
    /// The deadline of every JSON-RPC call.
    public var callTimeout: Duration = .seconds(10)
    /// How long a transaction may take from its first broadcast to its confirmations
    /// before the call fails with `.transport` (it may still be mined later).
    public var transactionTimeout: Duration = .seconds(180)
    /// A transaction not mined after this long is sent again with fees 12.5 % higher
    /// (the replacement rule's minimum is 10 %), up to the caps.
    public var resubmitAfter: Duration = .seconds(20)
    /// The most this node pays per gas (base fee plus tip), in wei. A transaction whose
    /// base fee alone is above the cap waits for fees to fall, until its deadline.
    public var maxFeePerGas: Amount = Amount(UInt64(500_000_000_000))
    /// The highest tip per gas it offers, in wei.
    public var maxPriorityFeePerGas: Amount = Amount(UInt64(5_000_000_000))
    /// The widest block range one `eth_getLogs` asks for (public endpoints limit it).
    public var logRange: UInt64 = 2_000

    public init() {}
}

/// One adjudicator on one EVM chain, reached over JSON-RPC: the shared half of the
/// Ethereum settlement adapter. `adapter(for:key:)` gives each node identity its
/// `SettlementAdapter`, signing and paying with that identity's settlement key.
///
/// The adapter needs only standard Ethereum JSON-RPC methods, so the same code runs
/// against the local EVM (`Tools/evm-devnet`), anvil, geth's dev mode or a public endpoint.
public final class EthereumChain: Sendable {
    public let rpc: JSONRPCClient
    public let adjudicator: EthereumAddress
    public let options: EthereumChainOptions
    /// Sends native ETH to accounts that ask `mint`: a funded development key, or nil
    /// where nobody hands out money (`mint` then fails with `notPermitted`).
    let faucet: EthereumSigningKey?
    let logger: Logger
    /// Every adapter's calls through this chain: latency and failures (Docs/Metrics.md).
    let chainCalls = ChainCallMetrics()

    /// What the event pollers met, for tests and status lines.
    public struct Diagnostics: Sendable, Equatable {
        /// Reorganisations below the confirmation depth that made a poller step back.
        public var reorganisations = 0
        /// Failed polls (the endpoint down or answering nonsense).
        public var pollFailures = 0
    }
    let diagnostics = Locked(Diagnostics())

    /// The gas one adjudicator transaction used, as its receipt says.
    public struct GasRecord: Sendable, Equatable {
        /// `deposit`, `register`, `progress`, `conclude`, `withdraw`, `reclaim`, `approve`, `mint`.
        public let operation: String
        public let gasUsed: UInt64
        /// Wei per gas the transaction paid (base fee plus tip).
        public let effectiveGasPrice: Amount
        public let transaction: Digest
        /// The account that paid.
        public let sender: EthereumAddress

        /// What the transaction cost its sender in wei.
        public var fee: Amount { Amount(UInt64(gasUsed)) * effectiveGasPrice }
    }
    private let gasLog = Locked<[GasRecord]>([])

    /// The gas of this process's transactions through this chain, oldest first (the last 1,000).
    public var gasRecords: [GasRecord] { gasLog.withLock { $0 } }

    func recordGas(_ operation: String, _ receipt: Receipt, sender: EthereumAddress) {
        gasLog.withLock { log in
            log.append(
                GasRecord(
                    operation: operation, gasUsed: receipt.gasUsed, effectiveGasPrice: receipt.effectiveGasPrice,
                    transaction: receipt.hash, sender: sender))
            if log.count > 1_000 { log.removeFirst(log.count - 1_000) }
        }
    }
    public var diagnosticsSnapshot: Diagnostics { diagnostics.withLock { $0 } }

    private struct Cache {
        var chainID: UInt64?
        var token: EthereumAddress??
        var accounts: [PublicKey: EthereumAddress] = [:]
        var params: [ChannelID: ChannelParams] = [:]
        var senders: [EthereumAddress: TransactionSender] = [:]
        var depositLocks: [EthereumAddress: AsyncSemaphore] = [:]
        var blockTimes: [Digest: ChainTime] = [:]
    }
    private let cache = Locked(Cache())

    public init(
        endpoint: URL, adjudicator: EthereumAddress, options: EthereumChainOptions = EthereumChainOptions(),
        faucet: EthereumSigningKey? = nil, logger: Logger = Logger(label: "parley.ethereum")
    ) {
        self.logger = logger
        rpc = JSONRPCClient(endpoint: endpoint, callTimeout: options.callTimeout)
        self.adjudicator = adjudicator
        // Values that would deliver nothing (0 confirmations asks for a block beyond the
        // head) or trap (a 0-block range) are raised to the least that works.
        var options = options
        options.confirmations = max(1, options.confirmations)
        options.logRange = max(1, options.logRange)
        self.options = options
        self.faucet = faucet
    }

    /// The adapter that acts as `identity`, whose transactions `key` signs and pays for.
    /// `key` must be the key whose address the identity's channels name as its signer
    /// (`SigningKey.settlementKey` for a node).
    public func adapter(for identity: PublicKey, key: EthereumSigningKey) -> EthereumAdapter {
        cache.withLock { $0.accounts[identity] = key.address }
        return EthereumAdapter(chain: self, identity: identity, key: key)
    }

    /// Tells the chain which account an identity uses, so `balance(of:)` and `mint` can name it.
    public func remember(_ identity: PublicKey, as address: EthereumAddress) {
        cache.withLock { $0.accounts[identity] = address }
    }

    func account(of identity: PublicKey) -> EthereumAddress? {
        cache.withLock { $0.accounts[identity] }
    }

    func sender(for key: EthereumSigningKey) -> TransactionSender {
        cache.withLock { cache in
            if let sender = cache.senders[key.address] { return sender }
            let sender = TransactionSender(chain: self, key: key)
            cache.senders[key.address] = sender
            return sender
        }
    }

    /// The lock an account's token deposits (allowance check, approve, deposit) hold: one
    /// approve-then-deposit at a time, so two deposits cannot spend one approval.
    func depositLock(for address: EthereumAddress) -> AsyncSemaphore {
        cache.withLock { cache in
            if let lock = cache.depositLocks[address] { return lock }
            let lock = AsyncSemaphore(permits: 1)
            cache.depositLocks[address] = lock
            return lock
        }
    }

    // MARK: - Chain facts

    public func chainID() async throws(EthereumRPCError) -> UInt64 {
        if let known = cache.withLock({ $0.chainID }) { return known }
        let id = try Quantity.uint64(try await rpc.call("eth_chainId"), "eth_chainId")
        cache.withLock { $0.chainID = id }
        return id
    }

    public func domain() async throws(EthereumRPCError) -> SettlementDomain {
        let id = try await chainID()
        guard let domain = try? SettlementDomain(chainID: id, contract: adjudicator.bytes) else {
            throw .badAnswer("chain id \(id) cannot name a settlement domain")
        }
        return domain
    }

    /// The ERC-20 the adjudicator holds, or nil for native ETH.
    public func token() async throws(EthereumRPCError) -> EthereumAddress? {
        if let known = cache.withLock({ $0.token }) { return known }
        let answer = try await call(adjudicator, AdjudicatorABI.token)
        let address = try ABIDecoder(answer).address(0, "token")
        let token: EthereumAddress? = address.bytes.allSatisfy { $0 == 0 } ? nil : address
        cache.withLock { $0.token = .some(token) }
        return token
    }

    public func blockNumber() async throws(EthereumRPCError) -> UInt64 {
        try Quantity.uint64(try await rpc.call("eth_blockNumber"), "eth_blockNumber")
    }

    /// A block's header fields the adapter uses; `nil` when the node does not have it.
    package struct Block: Sendable {
        let number: UInt64
        let hash: Digest
        let time: ChainTime
        let baseFee: Amount?
    }

    /// The latest block's timestamp: chain time.
    public func latestTime() async throws(EthereumRPCError) -> ChainTime {
        guard let latest = try await block("latest") else { throw .badAnswer("the node has no latest block") }
        return latest.time
    }

    func block(_ tag: String) async throws(EthereumRPCError) -> Block? {
        try Self.block(from: try await rpc.call("eth_getBlockByNumber", [.string(tag), .bool(false)]))
    }

    func block(number: UInt64) async throws(EthereumRPCError) -> Block? {
        try await block(Quantity.hex(number))
    }

    package static func block(from value: JSONValue) throws(EthereumRPCError) -> Block? {
        if value.isNull { return nil }
        return Block(
            number: try Quantity.uint64(value["number"], "block number"), hash: try Quantity.digest(value["hash"], "block hash"),
            time: ChainTime(seconds: try Quantity.uint64(value["timestamp"], "block timestamp")),
            baseFee: value["baseFeePerGas"].flatMap { try? Quantity.amount($0, "base fee") })
    }

    /// The timestamp of the block with this hash (cached: a hash names one block forever).
    func time(ofBlock hash: Digest) async throws(EthereumRPCError) -> ChainTime {
        if let known = cache.withLock({ $0.blockTimes[hash] }) { return known }
        let value = try await rpc.call("eth_getBlockByHash", [.string(Quantity.data(hash.bytes)), .bool(false)])
        guard let block = try Self.block(from: value) else { throw .badAnswer("block \(hash.hex) is unknown to the node") }
        cache.withLock { cache in
            if cache.blockTimes.count > 4096 { cache.blockTimes.removeAll(keepingCapacity: true) }
            cache.blockTimes[hash] = block.time
        }
        return block.time
    }

    /// `eth_call` of `data` on `to` at `block`; a revert throws `.rpc` with its data.
    func call(
        _ to: EthereumAddress, _ data: [UInt8], from: EthereumAddress? = nil, value: Amount = .zero,
        block: String = "latest"
    ) async throws(EthereumRPCError) -> [UInt8] {
        var request: [String: JSONValue] = ["to": .string(Quantity.data(to.bytes)), "data": .string(Quantity.data(data))]
        if let from { request["from"] = .string(Quantity.data(from.bytes)) }
        if value > .zero { request["value"] = .string(Quantity.hex(value)) }
        return try Quantity.bytes(try await rpc.call("eth_call", [.object(request), .string(block)]), "eth_call result")
    }

    /// The account's balance in the adjudicator's asset: wei, or the token's units.
    public func balance(of address: EthereumAddress) async throws(EthereumRPCError) -> Amount {
        if let token = try await token() {
            let answer = try await call(token, AdjudicatorABI.call(AdjudicatorABI.balanceOf, [.address(address.bytes)]))
            return try ABIDecoder(answer).amount(0, "token balance")
        }
        return try Quantity.amount(
            try await rpc.call("eth_getBalance", [.string(Quantity.data(address.bytes)), .string("latest")]), "balance")
    }

    // MARK: - Logs

    /// A decoded adjudicator log with where it sits in the chain.
    package struct Log: Sendable {
        let block: UInt64
        let blockHash: Digest
        let index: UInt64
        package let channel: ChannelID
        package let event: AdjudicatorABI.Event

        /// `ChainEvent.sequence`: the block number in the high bits, the log's index in its
        /// block in the low 20. Increasing along the chain, not gap-free.
        var sequence: UInt64 { block << 20 | index }
    }

    static let logIndexBits: UInt64 = 20

    /// The adjudicator's logs in `from...to`, optionally only one channel's and some topics,
    /// in chain order. Wide ranges are asked for in `options.logRange` pieces.
    func logs(
        from: UInt64, to: UInt64, channel: ChannelID? = nil, topics: [Digest] = AdjudicatorABI.Topic.all
    ) async throws(EthereumRPCError) -> [Log] {
        guard from <= to else { return [] }
        let domain = try await domain()
        var out: [Log] = []
        var start = from
        while start <= to {
            let end = min(to, start + options.logRange - 1)
            var topicFilter: [JSONValue] = [.array(topics.map { .string(Quantity.data($0.bytes)) })]
            if let channel { topicFilter.append(.string(Quantity.data(channel.digest.bytes))) }
            let filter: JSONValue = .object([
                "address": .string(Quantity.data(adjudicator.bytes)), "fromBlock": .string(Quantity.hex(start)),
                "toBlock": .string(Quantity.hex(end)), "topics": .array(topicFilter),
            ])
            guard let entries = try await rpc.call("eth_getLogs", [filter]).array else {
                throw .badAnswer("eth_getLogs did not answer a list")
            }
            for entry in entries {
                // A log that does not decode is skipped and reported, never allowed to fail
                // the range: else one hostile log would stop every watcher's event stream.
                // The contract bounds every field it logs, so its own events always decode.
                do {
                    if let log = try Self.log(from: entry, adjudicator: adjudicator, domain: domain) { out.append(log) }
                } catch {
                    logger.warning("skipped an adjudicator log that does not decode", metadata: ["error": "\(error)", "log": "\(entry)"])
                }
            }
            if end == UInt64.max { break }
            start = end + 1
        }
        return out.sorted { ($0.block, $0.index) < ($1.block, $1.index) }
    }

    package static func log(from entry: JSONValue, adjudicator: EthereumAddress, domain: SettlementDomain) throws(EthereumRPCError) -> Log? {
        guard try Quantity.address(entry["address"], "log address") == adjudicator else { return nil }
        if case .bool(true)? = entry["removed"] { return nil }
        guard let topicValues = entry["topics"]?.array else { throw .badAnswer("a log without topics") }
        var topics: [Digest] = []
        for value in topicValues { topics.append(try Quantity.digest(value, "log topic")) }
        let data = try Quantity.bytes(entry["data"], "log data")
        guard let (channel, event) = try AdjudicatorABI.decode(topics: topics, data: data, domain: domain) else { return nil }
        let index = try Quantity.uint64(entry["logIndex"], "log index")
        guard index < 1 << logIndexBits else { throw .badAnswer("log index \(index) is beyond 2^20") }
        return Log(
            block: try Quantity.uint64(entry["blockNumber"], "log block"), blockHash: try Quantity.digest(entry["blockHash"], "log block hash"),
            index: index, channel: channel, event: event)
    }

    /// The newest of the channel's logs with these topics up to `block`, scanning
    /// `logRange`-block windows backwards from it down to `fromBlock`.
    func newestLog(channel: ChannelID, topics: [Digest], upTo block: UInt64) async throws(EthereumRPCError) -> Log? {
        var end = block
        while end >= options.fromBlock {
            let start = end >= options.fromBlock + options.logRange ? end - options.logRange + 1 : options.fromBlock
            if let last = try await logs(from: start, to: end, channel: channel, topics: topics).last { return last }
            guard start > options.fromBlock else { break }
            end = start - 1
        }
        return nil
    }

    /// The `ChainEvent` of a log; nil for `Opened`, which is not one.
    func chainEvent(_ log: Log) async throws(EthereumRPCError) -> ChainEvent? {
        guard case let .chain(kind, _) = log.event else { return nil }
        return ChainEvent(sequence: log.sequence, time: try await time(ofBlock: log.blockHash), channel: log.channel, kind: kind)
    }

    // MARK: - Channel snapshots

    func rememberParams(_ params: ChannelParams) {
        cache.withLock { $0.params[params.id] = params }
    }

    /// The params of a channel, from its `Opened` event (cached: they hash to the id).
    func params(of id: ChannelID, upTo block: UInt64) async throws(EthereumRPCError) -> ChannelParams? {
        if let known = cache.withLock({ $0.params[id] }) { return known }
        let logs = try await logs(from: options.fromBlock, to: block, channel: id, topics: [AdjudicatorABI.Topic.opened])
        for log in logs {
            if case let .opened(opening) = log.event {
                rememberParams(opening.params)
                return opening.params
            }
        }
        return nil
    }

    /// The channel as the adjudicator holds it, read at one block so storage and logs agree.
    func channel(_ id: ChannelID) async throws(EthereumRPCError) -> ChannelOnChain? {
        let head = try await blockNumber()
        let words = try await call(adjudicator, AdjudicatorABI.call(AdjudicatorABI.channels, [.fixedBytes(id.digest.bytes)]), block: Quantity.hex(head))
        let d = ABIDecoder(words)
        let money = try d.uint256(0, "money")
        let opening = try d.uint256(1, "opening")
        let meta = try d.uint256(2, "meta")
        let flags = UInt8(truncatingIfNeeded: meta.low)
        guard flags & Flag.exists != 0 else { return nil }
        guard let params = try await params(of: id, upTo: head) else {
            throw .badAnswer("channel \(id.shortID) has storage but no Opened event up to block \(head)")
        }
        let openingAllocation = Allocation(Amount(opening.low), Amount(opening.high))
        let moneyAllocation = Allocation(Amount(money.low), Amount(money.high))
        let isFunded = flags & Flag.funded != 0
        let registered = flags & Flag.registered != 0
        let concluded = flags & Flag.concluded != 0
        let version = UInt64(truncatingIfNeeded: meta.low >> 8)
        let deadline = UInt64(truncatingIfNeeded: (meta.low >> 72) | (meta.high << 56))
        var state: ChannelState?
        if registered {
            // The newest registration or progress: scanned backwards from the head, so a
            // dispute reads only the recent blocks however old the deployment is.
            if let log = try await newestLog(
                channel: id, topics: [AdjudicatorABI.Topic.registered, AdjudicatorABI.Topic.progressed], upTo: head),
                case let .chain(_, registered?) = log.event
            {
                state = registered
            }
            guard let state, state.version == version else {
                throw .badAnswer("channel \(id.shortID) registered version \(version) has no matching event")
            }
        }
        var withdrawn: Set<ParticipantIndex> = []
        if flags & Flag.withdrawn0 != 0 { withdrawn.insert(.first) }
        if flags & Flag.withdrawn1 != 0 { withdrawn.insert(.second) }
        let phase: ChainPhase =
            if concluded {
                ParticipantIndex.allCases.allSatisfy { moneyAllocation[$0] == .zero || withdrawn.contains($0) }
                    ? .withdrawn : .concluded
            } else if registered { .disputed } else { .open }
        guard
            let snapshot = ChannelOnChain(
                params: params, opening: openingAllocation, deposits: isFunded ? openingAllocation : moneyAllocation,
                isFunded: isFunded, depositsClosed: flags & Flag.depositsClosed != 0, registeredState: state,
                isProgressed: flags & Flag.progressed != 0, deadline: registered ? ChainTime(seconds: deadline) : nil,
                phase: phase, concludedAllocation: concluded ? moneyAllocation : nil, withdrawn: withdrawn)
        else { throw .badAnswer("channel \(id.shortID)'s opening does not fit 128 bits") }
        return snapshot
    }

    /// The contract's flag bits (`Adjudicator.vy`, `meta`).
    enum Flag {
        static let exists: UInt8 = 1
        static let funded: UInt8 = 2
        static let depositsClosed: UInt8 = 4
        static let registered: UInt8 = 8
        static let progressed: UInt8 = 16
        static let concluded: UInt8 = 32
        static let withdrawn0: UInt8 = 64
        static let withdrawn1: UInt8 = 128
    }
}

extension EthereumChain {
    func logReorganisation(fork: UInt64) {
        diagnostics.withLock { $0.reorganisations += 1 }
        logger.warning(
            "the chain reorganised below the confirmation depth; reading events again", metadata: ["fromBlock": "\(fork + 1)"])
    }

    func logPollFailure(_ error: any Error, attempt: Int) {
        diagnostics.withLock { $0.pollFailures += 1 }
        if attempt == 1 || attempt % 20 == 0 { logger.warning(
                "polling the Ethereum endpoint failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"]) }
    }
}
