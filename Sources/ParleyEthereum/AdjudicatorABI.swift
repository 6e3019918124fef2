import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire

/// The calls and events of `Contracts/Adjudicator.vy` (and the two ERC-20 calls the
/// adapter makes), encoded and decoded. `AdjudicatorABITests` checks every selector and
/// topic against the compiled ABI in `Contracts/build/`.
package enum AdjudicatorABI {
    static let paramsType = "(bytes32[2],address[2],bytes32,uint64,string)"
    static let stateType = "(bytes32,uint64,uint256[2],bytes,bool)"
    static let signatureType = "(uint8,bytes32,bytes32)"
    /// The longest app data the contract takes (`MAX_APP_DATA`).
    static let maxAppData = EthereumBackend.maxAppDataBytes

    static let deposit = selector("deposit(\(paramsType),uint256[2],uint8,uint256)")
    static let reclaim = selector("reclaim(\(paramsType))")
    static let withdraw = selector("withdraw(\(paramsType),uint8)")
    static let register = selector("register(\(paramsType),\(stateType),\(signatureType)[2])")
    static let progress = selector("progress(\(paramsType),\(stateType),\(stateType),\(signatureType))")
    static let conclude = selector("conclude(bytes32)")
    static let channels = selector("channels(bytes32)")
    static let token = selector("token()")
    static let balanceOf = selector("balanceOf(address)")
    static let allowance = selector("allowance(address,address)")
    static let approve = selector("approve(address,uint256)")
    static let mint = selector("mint(address,uint256)")
    static let totalSupply = selector("totalSupply()")

    static func selector(_ signature: String) -> [UInt8] {
        Array(Keccak256.hash(Array(signature.utf8)).bytes.prefix(4))
    }

    static func call(_ selector: [UInt8], _ arguments: [ABIValue]) -> [UInt8] {
        selector + ABI.encode(arguments)
    }

    static func params(_ params: ChannelParams) -> ABIValue {
        .tuple([
            .fixedArray(params.participants.map { .fixedBytes($0.bytes) }),
            .fixedArray(params.signers.map { .address($0.bytes) }),
            .fixedBytes(params.nonce), .uint(params.challengeDuration), .string(params.appID.rawValue),
        ])
    }

    static func state(_ state: ChannelState) -> ABIValue {
        .tuple([
            .fixedBytes(state.channelID.digest.bytes), .uint(state.version),
            .fixedArray([.amount(state.allocation[.first]), .amount(state.allocation[.second])]),
            .bytes(state.appData), .bool(state.isFinal),
        ])
    }

    /// `(v, r, s)` of an Ethereum signature; any other signature becomes all zeros, which
    /// the contract refuses as a bad signature.
    static func signature(_ signature: StateSignature?) -> ABIValue {
        guard case let .ethereum(recoverable)? = signature else {
            return .tuple([.uint(0), .fixedBytes([UInt8](repeating: 0, count: 32)), .fixedBytes([UInt8](repeating: 0, count: 32))])
        }
        let bytes = recoverable.bytes
        return .tuple([.uint(UInt64(bytes[64])), .fixedBytes(Array(bytes[0..<32])), .fixedBytes(Array(bytes[32..<64]))])
    }

    static func allocation(_ allocation: Allocation) -> ABIValue {
        .fixedArray([.amount(allocation[.first]), .amount(allocation[.second])])
    }

    // MARK: - Events

    package enum Topic {
        package static let opened = topic("Opened(bytes32,bytes32[2],address[2],bytes32,uint64,string,uint256[2])")
        package static let deposited = topic("Deposited(bytes32,uint8,uint256,uint256)")
        package static let funded = topic("Funded(bytes32)")
        package static let registered = topic("Registered(bytes32,uint64,uint64,uint8,uint256[2],bytes,bool)")
        package static let progressed = topic("Progressed(bytes32,uint64,uint64,uint8,uint256[2],bytes)")
        package static let concluded = topic("Concluded(bytes32,uint64,uint256[2])")
        package static let withdrawn = topic("Withdrawn(bytes32,uint8,uint256)")
        package static let reclaimed = topic("Reclaimed(bytes32,uint8,uint256)")

        package static let all = [opened, deposited, funded, registered, progressed, concluded, withdrawn, reclaimed]

        static func topic(_ signature: String) -> Digest { Keccak256.hash(Array(signature.utf8)) }
    }

    /// The terms a channel's first deposit named, as its `Opened` event carries them.
    package struct Opening: Sendable, Equatable {
        package let params: ChannelParams
        package let opening: Allocation
    }

    /// One decoded adjudicator event.
    package enum Event: Sendable, Equatable {
        case opened(Opening)
        /// A `ChainEvent` kind, plus the state of a registration or progress (to rebuild the
        /// registered state without storage reads).
        case chain(ChainEvent.Kind, registered: ChannelState?)
    }

    /// Decodes one log of the adjudicator. `nil` for a log that is not one of its events
    /// (another contract's, or a topic this build does not know).
    package static func decode(
        topics: [Digest], data: [UInt8], domain: SettlementDomain
    ) throws(EthereumRPCError) -> (ChannelID, Event)? {
        guard topics.count == 2, let topic = topics.first, Topic.all.contains(topic) else { return nil }
        let channel = ChannelID(digest: topics[1])
        let d = ABIDecoder(data)
        let event: Event
        switch topic {
        case Topic.opened:
            // Anyone can make the first deposit of a channel with any terms: what Parley would
            // never sign (an app id that is not UTF-8, a zero challenge, …) is someone else's
            // channel, skipped, never a failure: one such log must not stop the event stream.
            do {
                let identities = try [d.bytes32(0, "identity 0"), d.bytes32(1, "identity 1")]
                let signers = try [d.address(2, "signer 0"), d.address(3, "signer 1")]
                let nonce = try d.bytes32(4, "nonce")
                let challenge = try d.uint64(5, "challenge duration")
                let appID = try d.string(6, limit: WireLimits.maxAppIDBytes, "app id")
                let opening = Allocation(try d.amount(7, "opening 0"), try d.amount(8, "opening 1"))
                let params = try ChannelParams(
                    participants: try identities.map { bytes throws(CryptoError) in try PublicKey(bytes: bytes) },
                    signers: signers.map { .ethereum($0) }, nonce: nonce, challengeDuration: challenge,
                    appID: try AppID(appID), domain: domain)
                // The contract derives the id from these params; a mismatch is a node lying.
                guard params.id == channel else { return nil }
                event = .opened(Opening(params: params, opening: opening))
            } catch {
                return nil
            }
        case Topic.deposited:
            event = .chain(
                .deposited(
                    participant: try seat(d, 0), amount: try d.amount(1, "amount"),
                    totalDeposited: try d.amount(2, "total deposited")), registered: nil)
        case Topic.funded:
            event = .chain(.funded, registered: nil)
        case Topic.registered:
            let version = try d.uint64(0, "version")
            let state = ChannelState(
                channelID: channel, version: version,
                allocation: Allocation(try d.amount(3, "balance 0"), try d.amount(4, "balance 1")),
                appData: try d.dynamicBytes(5, limit: maxAppData, "app data"), isFinal: try d.bool(6, "is final"))
            event = .chain(
                .registered(version: version, deadline: ChainTime(seconds: try d.uint64(1, "deadline")), by: try seat(d, 2)),
                registered: state)
        case Topic.progressed:
            let version = try d.uint64(0, "version")
            let state = ChannelState(
                channelID: channel, version: version,
                allocation: Allocation(try d.amount(3, "balance 0"), try d.amount(4, "balance 1")),
                appData: try d.dynamicBytes(5, limit: maxAppData, "app data"), isFinal: false)
            event = .chain(
                .progressed(version: version, deadline: ChainTime(seconds: try d.uint64(1, "deadline")), mover: try seat(d, 2)),
                registered: state)
        case Topic.concluded:
            event = .chain(
                .concluded(
                    version: try d.uint64(0, "version"),
                    allocation: Allocation(try d.amount(1, "payout 0"), try d.amount(2, "payout 1"))), registered: nil)
        case Topic.withdrawn:
            event = .chain(.withdrawn(participant: try seat(d, 0), amount: try d.amount(1, "amount")), registered: nil)
        default:
            event = .chain(.reclaimed(participant: try seat(d, 0), amount: try d.amount(1, "amount")), registered: nil)
        }
        return (channel, event)
    }

    private static func seat(_ d: ABIDecoder, _ index: Int) throws(EthereumRPCError) -> ParticipantIndex {
        guard let seat = ParticipantIndex(rawValue: try d.uint8(index, "seat")) else {
            throw .badAnswer("a seat is 0 or 1")
        }
        return seat
    }
}
