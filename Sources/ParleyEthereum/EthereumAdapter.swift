import Foundation
import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire

/// A node's `SettlementAdapter` on an EVM chain: `identity` acts through the settlement
/// key `key`, which signs and pays for its transactions and is the signer its Ethereum
/// channels name. Made by `EthereumChain.adapter(for:key:)`.
///
/// Every transaction is simulated first (`eth_estimateGas` runs it; `eth_call` for a token
/// deposit's rules before its `approve`), so a refusal costs no gas and comes
/// back as the `SettlementError` the adjudicator's revert names, with the same fields the
/// embedded chain gives (read from the chain). A transaction method returns once its
/// receipt has the chain's confirmation depth, with the events it emitted.
public struct EthereumAdapter: SettlementAdapter, DevFaucet {
    public let chain: EthereumChain
    public let identity: PublicKey
    public let key: EthereumSigningKey

    init(chain: EthereumChain, identity: PublicKey, key: EthereumSigningKey) {
        self.chain = chain
        self.identity = identity
        self.key = key
    }

    /// The account this adapter pays from and withdraws to.
    public var address: EthereumAddress { key.address }

    // MARK: - ChainClock, ChainReader, domain

    /// The latest block's timestamp: a transaction sent now is judged at this time or later.
    public func now() async throws(SettlementError) -> ChainTime {
        try await chain.chainCalls.measure(.now) { () async throws(SettlementError) -> ChainTime in
            let latest = try await transport { () async throws(EthereumRPCError) in try await chain.block("latest") }
            guard let latest else { throw .transport("the Ethereum node has no latest block") }
            return latest.time
        }
    }

    public func domain() async throws(SettlementError) -> SettlementDomain {
        try await chain.chainCalls.measure(.domain) { () async throws(SettlementError) -> SettlementDomain in
            try await transport { () async throws(EthereumRPCError) in try await chain.domain() }
        }
    }

    public func channel(_ id: ChannelID) async throws(SettlementError) -> ChannelOnChain? {
        try await chain.chainCalls.measure(.channel) { () async throws(SettlementError) -> ChannelOnChain? in
            try await transport { () async throws(EthereumRPCError) in try await chain.channel(id) }
        }
    }

    /// The balance in the adjudicator's asset of an identity this chain knows the account of
    /// (every identity an adapter was made for, and those given to `remember`).
    public func balance(of account: PublicKey) async throws(SettlementError) -> Amount {
        try await chain.chainCalls.measure(.balance) { () async throws(SettlementError) -> Amount in
            guard let address = chain.account(of: account) else {
                throw .transport("no Ethereum account is known for \(account); EthereumChain.remember(_:as:) names it")
            }
            return try await transport { () async throws(EthereumRPCError) in try await chain.balance(of: address) }
        }
    }

    public func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        EventPoller(chain: chain).stream(after: sequence)
    }

    // MARK: - Funder

    @discardableResult
    public func deposit(
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount
    ) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.deposit) { () async throws(SettlementError) -> [ChainEvent] in
            let domain = try await domain()
            guard params.domain == domain else { throw .wrongDomain(expected: domain, got: params.domain) }
            guard params.backendID == .ethereum else {
                throw .transport("an EVM adjudicator settles only Ethereum-backend channels; this one signs with \(params.backendID)")
            }
            chain.rememberParams(params)
            let call = Call.deposit(params, opening, participant, amount)
            let data = AdjudicatorABI.call(
                AdjudicatorABI.deposit,
                [AdjudicatorABI.params(params), AdjudicatorABI.allocation(opening), .uint(UInt64(participant.rawValue)), .amount(amount)])
            let token = try await transport { () async throws(EthereumRPCError) in try await chain.token() }
            if let token {
                // The adjudicator pulls the deposit with transferFrom, after every rule passed:
                // so a simulation refused only for the money means the rules agree. Check the
                // balance, then allow exactly the amount.
                switch try await simulate(data, value: .zero) {
                case .accepted, .reverted("insufficientBalance"): break
                case let .reverted(reason): throw await refusal(reason, call)
                }
                // One approve-then-deposit at a time per account: concurrent deposits into two
                // channels would otherwise both see the old allowance, and the second
                // `transferFrom` would find the approval already spent.
                let lock = chain.depositLock(for: address)
                await lock.acquire()
                do throws(SettlementError) {
                    let has = try await balance(of: identity)
                    guard has >= amount else { throw .insufficientBalance(account: identity, has: has, needs: amount) }
                    let allowance = try await transport { () async throws(EthereumRPCError) in
                        try ABIDecoder(
                            try await chain.call(
                                token, AdjudicatorABI.call(AdjudicatorABI.allowance, [.address(address.bytes), .address(chain.adjudicator.bytes)]))
                        ).amount(0, "allowance")
                    }
                    if allowance < amount {
                        _ = try await send(
                            to: token, AdjudicatorABI.call(AdjudicatorABI.approve, [.address(chain.adjudicator.bytes), .amount(amount)]),
                            call: call)
                    }
                    let events = try await submit(data, call: call)
                    await lock.release()
                    return events
                } catch {
                    await lock.release()
                    throw error
                }
            }
            return try await submit(data, value: amount, call: call)
        }
    }

    @discardableResult
    public func reclaim(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.reclaim) { () async throws(SettlementError) -> [ChainEvent] in
            let params = try await params(of: channel)
            return try await submit(
                AdjudicatorABI.call(AdjudicatorABI.reclaim, [AdjudicatorABI.params(params)]), call: .reclaim(params))
        }
    }

    // MARK: - Registerer, Concluder

    @discardableResult
    public func register(_ signed: SignedState) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.register) { () async throws(SettlementError) -> [ChainEvent] in
            let params = try await params(of: signed.state.channelID)
            for seat in ParticipantIndex.allCases where signed[seat] == nil { throw .missingSignature(seat) }
            try checkAppData(signed.state)
            let data = AdjudicatorABI.call(
                AdjudicatorABI.register,
                [
                    AdjudicatorABI.params(params), AdjudicatorABI.state(signed.state),
                    .fixedArray([AdjudicatorABI.signature(signed[.first]), AdjudicatorABI.signature(signed[.second])]),
                ])
            return try await submit(data, call: .register(params, signed.state))
        }
    }

    @discardableResult
    public func progress(
        _ channel: ChannelID, to state: ChannelState, moverSignature: StateSignature
    ) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.progress) { () async throws(SettlementError) -> [ChainEvent] in
            let params = try await params(of: channel)
            guard state.channelID == channel else { throw .wrongChannel(expected: channel, got: state.channelID) }
            try checkAppData(state)
            guard let onChain = try await self.channel(channel) else { throw .unknownChannel(channel) }
            guard !onChain.isConcluded else { throw .alreadyConcluded }
            guard let current = onChain.registeredState else { throw .nothingRegistered }
            let data = AdjudicatorABI.call(
                AdjudicatorABI.progress,
                [
                    AdjudicatorABI.params(params), AdjudicatorABI.state(current), AdjudicatorABI.state(state),
                    AdjudicatorABI.signature(moverSignature),
                ])
            return try await submit(data, call: .progress(params, current, state))
        }
    }

    @discardableResult
    public func conclude(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.conclude) { () async throws(SettlementError) -> [ChainEvent] in
            try await submit(AdjudicatorABI.call(AdjudicatorABI.conclude, [.fixedBytes(channel.digest.bytes)]), call: .conclude(channel))
        }
    }

    @discardableResult
    public func withdraw(_ channel: ChannelID, participant: ParticipantIndex) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.withdraw) { () async throws(SettlementError) -> [ChainEvent] in
            let params = try await params(of: channel)
            return try await submit(
                AdjudicatorABI.call(AdjudicatorABI.withdraw, [AdjudicatorABI.params(params), .uint(UInt64(participant.rawValue))]),
                call: .withdraw(params, participant))
        }
    }

    // MARK: - DevFaucet

    /// Development chains only. On a token adjudicator it mints the dev token (anyone may,
    /// `Contracts/dev/DevToken.vy`); on an ETH adjudicator it sends ether from the chain's
    /// faucet key. Elsewhere it fails with `notPermitted`.
    @discardableResult
    public func mint(_ amount: Amount, to account: PublicKey) async throws(SettlementError) -> [ChainEvent] {
        try await chain.chainCalls.measure(.mint) { () async throws(SettlementError) -> [ChainEvent] in
            guard amount > .zero else { throw .zeroAmount }
            guard let address = chain.account(of: account) else {
                throw .transport("no Ethereum account is known for \(account); EthereumChain.remember(_:as:) names it")
            }
            let token = try await transport { () async throws(EthereumRPCError) in try await chain.token() }
            if let token {
                // As on Parley's chains, the money supply stays within an Amount (128 bits).
                let supply = try await transport { () async throws(EthereumRPCError) in
                    try ABIDecoder(try await chain.call(token, AdjudicatorABI.totalSupply)).amount(0, "total supply")
                }
                guard !supply.addingReportingOverflow(amount).overflow else { throw .balanceOverflow }
                _ = try await send(to: token, AdjudicatorABI.call(AdjudicatorABI.mint, [.address(address.bytes), .amount(amount)]), call: .mint)
                return []
            }
            guard let faucet = chain.faucet else {
                throw .notPermitted("this Ethereum chain has no faucet: send ether to \(address) from a funded account")
            }
            do {
                _ = try await chain.sender(for: faucet).send(to: address, data: [], value: amount)
            } catch {
                throw .transport("the faucet's transfer failed: \(error)")
            }
            return []
        }
    }

    // MARK: - Sending

    /// What a transaction was for: the context that turns a revert into a full `SettlementError`.
    enum Call: Sendable {
        case deposit(ChannelParams, Allocation, ParticipantIndex, Amount)
        case reclaim(ChannelParams)
        case register(ChannelParams, ChannelState)
        case progress(ChannelParams, ChannelState, ChannelState)
        case conclude(ChannelID)
        case withdraw(ChannelParams, ParticipantIndex)
        case mint

        var name: String {
            switch self {
            case .deposit: "deposit"
            case .reclaim: "reclaim"
            case .register: "register"
            case .progress: "progress"
            case .conclude: "conclude"
            case .withdraw: "withdraw"
            case .mint: "mint"
            }
        }

        var channel: ChannelID? {
            switch self {
            case let .deposit(params, _, _, _), let .reclaim(params), let .register(params, _), let .progress(params, _, _),
                let .withdraw(params, _):
                params.id
            case let .conclude(id): id
            case .mint: nil
            }
        }
    }

    private func submit(_ data: [UInt8], value: Amount = .zero, call: Call) async throws(SettlementError) -> [ChainEvent] {
        let receipt = try await send(to: chain.adjudicator, data, value: value, call: call)
        var events: [ChainEvent] = []
        for entry in receipt.logs {
            let event = try await transport { () async throws(EthereumRPCError) -> ChainEvent? in
                let domain = try await chain.domain()
                guard let log = try EthereumChain.log(from: entry, adjudicator: chain.adjudicator, domain: domain) else { return nil }
                return try await chain.chainEvent(log)
            }
            if let event { events.append(event) }
        }
        return events
    }

    private func send(to: EthereumAddress, _ data: [UInt8], value: Amount = .zero, call: Call) async throws(SettlementError) -> Receipt {
        do {
            let receipt = try await chain.sender(for: key).send(to: to, data: data, value: value)
            chain.recordGas(to == chain.adjudicator ? call.name : (call.name == "mint" ? "mint" : "approve"), receipt, sender: address)
            return receipt
        } catch {
            switch error {
            case let .reverted(reason): throw await refusal(reason, call)
            case let .insufficientFunds(message):
                // On an ether adjudicator a deposit's amount and its gas come from one
                // balance; anything else lacks only the gas.
                if case let .deposit(_, _, _, amount) = call, value > .zero {
                    let has = (try? await chain.balance(of: address)) ?? .zero
                    throw .insufficientBalance(account: identity, has: has, needs: amount)
                }
                throw .transport("\(address) has too little ether to pay for the \(call.name) transaction's gas (\(message))")
            case let .transport(why): throw .transport(why)
            }
        }
    }

    enum Simulation: Equatable {
        case accepted
        /// The reason string, when the revert data carries one.
        case reverted(String?)
    }

    /// What the adjudicator would say to the call now (`eth_call` from our account).
    private func simulate(_ data: [UInt8], value: Amount) async throws(SettlementError) -> Simulation {
        do {
            _ = try await chain.call(chain.adjudicator, data, from: address, value: value)
            return .accepted
        } catch {
            guard TransactionSender.isRevert(error) else { throw .transport(error.description) }
            return .reverted(TransactionSender.revertString(error))
        }
    }

    private func params(of channel: ChannelID) async throws(SettlementError) -> ChannelParams {
        let params = try await transport { () async throws(EthereumRPCError) in
            try await chain.params(of: channel, upTo: try await chain.blockNumber())
        }
        guard let params else { throw .unknownChannel(channel) }
        return params
    }

    private func checkAppData(_ state: ChannelState) throws(SettlementError) {
        guard state.appData.count <= AdjudicatorABI.maxAppData else {
            throw .transport(
                "the adjudicator takes at most \(AdjudicatorABI.maxAppData) bytes of app data; this state has \(state.appData.count)")
        }
    }

    private func transport<T>(_ body: () async throws(EthereumRPCError) -> T) async throws(SettlementError) -> T {
        do {
            return try await body()
        } catch {
            throw .transport(error.description)
        }
    }
}
