import Foundation
import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyChannel

/// The Ethereum backend against Tests/Vectors/ethereum-backend.json, whose outputs eth-abi
/// and eth-account compute from its inputs (`make test` checks that with
/// Tools/vectors/ethereum_backend.py): Parley signs exactly the bytes an EVM contract and
/// every Ethereum tool hash.
@Suite struct EthereumBackendTests {
    struct Vector: Decodable {
        struct Inputs: Decodable {
            struct State: Decodable {
                let version: UInt64
                let balances: [Amount]
                let appData: String
                let isFinal: Bool
            }
            let chainId: UInt64
            let adjudicator: String
            let identities: [String]
            let signerSecrets: [String]
            let nonce: String
            let challengeDuration: UInt64
            let appID: String
            let state: State
        }
        struct Outputs: Decodable {
            let signerAddresses: [String]
            let channelId: String
            let abiEncodedState: String
            let domainSeparator: String
            let structHash: String
            let digest: String
            let signatures: [String]
        }
        let inputs: Inputs
        let outputs: Outputs
    }

    static func vector() throws -> Vector {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Vectors/ethereum-backend.json").standardized
        return try JSONDecoder().decode(Vector.self, from: Data(contentsOf: path))
    }

    static func bytes(_ hex: String) throws -> [UInt8] {
        try #require(Hex.decode(String(hex.dropFirst(2))))
    }

    /// The vector's channel, state and keys, built the way the node builds them.
    static func fixture() throws -> (Vector, ChannelParams, ChannelState, [EthereumSigningKey]) {
        let vector = try vector()
        let inputs = vector.inputs
        let keys = try inputs.signerSecrets.map { try EthereumSigningKey(secretBytes: bytes($0)) }
        let domain = try SettlementDomain(
            chainID: inputs.chainId, contract: EthereumAddress(hex: inputs.adjudicator).bytes)
        let params = try ChannelParams(
            participants: inputs.identities.map { try PublicKey(bytes: bytes($0)) },
            signers: keys.map(\.settlementAddress), nonce: bytes(inputs.nonce),
            challengeDuration: inputs.challengeDuration, appID: AppID(inputs.appID), domain: domain)
        let state = ChannelState(
            channelID: params.id, version: inputs.state.version,
            allocation: Allocation(inputs.state.balances[0], inputs.state.balances[1]),
            appData: try bytes(inputs.state.appData), isFinal: inputs.state.isFinal)
        return (vector, params, state, keys)
    }

    @Test func everySignedByteMatchesEthAbiAndEthAccount() throws {
        let (vector, params, state, keys) = try Self.fixture()
        let outputs = vector.outputs
        #expect(keys.map(\.address.checksummed) == outputs.signerAddresses)
        #expect("0x" + params.id.digest.hex == outputs.channelId)
        #expect("0x" + Hex.encode(EthereumBackend.abiEncoded(state)) == outputs.abiEncodedState)
        #expect("0x" + EthereumBackend.domainSeparator(params.domain).hex == outputs.domainSeparator)
        #expect("0x" + EthereumBackend.structHash(state).hex == outputs.structHash)
        #expect("0x" + params.signingDigest(of: state).hex == outputs.digest)
        for (seat, key) in zip(ParticipantIndex.allCases, keys) {
            let signature = params.sign(state, with: key)
            #expect("0x" + Hex.encode(signature.bytes) == outputs.signatures[Int(seat.rawValue)])
            #expect(params.isSigned(state, by: seat, with: signature))
            #expect(!params.isSigned(state, by: seat.peer, with: signature), "a signature counts for its own seat only")
        }
    }

    @Test func aSignatureDoesNotCarryOverToAnotherChainContractOrState() throws {
        let (_, params, state, keys) = try Self.fixture()
        let signature = params.sign(state, with: keys[0])
        let otherChain = try ChannelParams(
            participants: params.participants, signers: params.signers, nonce: params.nonce,
            challengeDuration: params.challengeDuration, appID: params.appID,
            domain: SettlementDomain(chainID: params.domain.chainID + 1, contract: params.domain.contract))
        var contract = params.domain.contract
        contract[19] ^= 1
        let otherContract = try ChannelParams(
            participants: params.participants, signers: params.signers, nonce: params.nonce,
            challengeDuration: params.challengeDuration, appID: params.appID,
            domain: SettlementDomain(chainID: params.domain.chainID, contract: contract))
        for other in [otherChain, otherContract] {
            #expect(other.id != params.id)
            var moved = state
            moved.channelID = other.id
            #expect(!other.isSigned(moved, by: .first, with: signature))
            // Even the same state bytes: the EIP-712 domain differs.
            #expect(!other.isSigned(state, by: .first, with: signature))
        }
        for change in [
            { (s: inout ChannelState) in s.version += 1 }, { $0.allocation[.first] -= 1 }, { $0.allocation[.second] += 1 },
            { $0.appData = [0xac] }, { $0.isFinal.toggle() },
        ] {
            var changed = state
            change(&changed)
            #expect(!params.isSigned(changed, by: .first, with: signature))
        }
    }

    @Test func anEd25519SignatureNeverCountsOnAnEthereumChannelNorTheReverse() throws {
        let (_, params, state, keys) = try Self.fixture()
        let ed25519 = Fixtures.alice.signState(params.signingDigest(of: state))
        #expect(!params.isSigned(state, by: .first, with: ed25519))
        let edParams = Fixtures.params()
        var edState = state
        edState.channelID = edParams.id
        let ethereum = keys[0].signState(edParams.signingDigest(of: edState))
        #expect(!edParams.isSigned(edState, by: .first, with: ethereum))
    }

    /// Mallory tells Alice that Bob's address is hers, so Alice opens a channel with Mallory
    /// whose seat 1 signs with Bob's address, and signs version 0. Mallory then proposes the
    /// same terms to Bob in her own name, with Alice's signature: the signers and everything
    /// the contract sees are equal, only the transport identities differ. They are part of
    /// the id, so Alice's signature is not one on Bob's channel and Bob refuses it.
    @Test func aRelayedSignatureCannotOpenTheChannelUnderAnotherIdentity() throws {
        let (_, aliceView, _, keys) = try Self.fixture()
        let mallory = Fixtures.mallory.publicKey
        let toMallory = try ChannelParams(
            participants: [aliceView.participants[0], mallory], signers: aliceView.signers, nonce: aliceView.nonce,
            challengeDuration: aliceView.challengeDuration, appID: aliceView.appID, domain: aliceView.domain)
        let toBob = try ChannelParams(
            participants: [mallory, aliceView.participants[1]], signers: aliceView.signers, nonce: aliceView.nonce,
            challengeDuration: aliceView.challengeDuration, appID: aliceView.appID, domain: aliceView.domain)
        #expect(toBob.id != toMallory.id)
        let opening = ChannelState(channelID: toMallory.id, version: 0, allocation: Allocation(100, 0))
        let aliceSignature = toMallory.sign(opening, with: keys[0])
        var relayed = opening
        relayed.channelID = toBob.id
        #expect(!toBob.isSigned(relayed, by: .first, with: aliceSignature))
        #expect(throws: OpenRejection.invalidInitialState(.badSignature(signer: .first))) {
            _ = try ChannelEngine.accept(
                OpenProposal(params: toBob, initial: relayed, signature: aliceSignature), key: keys[1])
        }
    }

    /// What a hostile peer could put in a signature field: an unknown backend tag, a
    /// truncated one, a `v` other than 27/28, or the high-s twin of a valid signature (which
    /// plain ECDSA would accept). Each is refused by the decoder, before any state is looked at.
    @Test func malformedSignaturesOnTheWireAreRefusedWhenDecoded() throws {
        let (_, params, state, keys) = try Self.fixture()
        let valid = params.sign(state, with: keys[0])
        #expect(try StateSignature(wireBytes: valid.wireBytes) == valid)
        var unknownTag = valid.wireBytes
        unknownTag[0] = 3
        var truncated = valid.wireBytes
        truncated.removeLast()
        var badV = valid.wireBytes
        badV[65] = 29
        var highS = valid.wireBytes
        let order = try Self.bytes("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
        var borrow = 0
        for index in (0..<32).reversed() {
            let difference = Int(order[index]) - Int(valid.bytes[32 + index]) - borrow
            highS[1 + 32 + index] = UInt8((difference + 256) % 256)
            borrow = difference < 0 ? 1 : 0
        }
        highS[65] = valid.bytes[64] == 27 ? 28 : 27
        for hostile in [unknownTag, truncated, badV, highS, [0], []] {
            #expect(throws: WireError.self) { try StateSignature(wireBytes: hostile) }
        }
    }

    @Test func ethereumParamsNeedAnAdjudicatorAndEthereumSigners() throws {
        let (_, params, _, keys) = try Self.fixture()
        #expect(throws: WireError.self) {
            try ChannelParams(
                participants: params.participants, signers: params.signers, nonce: params.nonce,
                domain: SettlementDomain(chainID: 1))
        }
        #expect(throws: WireError.self) {
            try ChannelParams(
                participants: params.participants, signers: [keys[0].settlementAddress, Fixtures.bob.settlementAddress],
                nonce: params.nonce, domain: params.domain)
        }
        #expect(throws: WireError.self) {
            try ChannelParams(
                participants: params.participants, signers: [keys[0].settlementAddress, keys[0].settlementAddress],
                nonce: params.nonce, domain: params.domain)
        }
        #expect(throws: WireError.self) {
            try ChannelParams(
                participants: params.participants,
                signers: [keys[0].settlementAddress, .ethereum(try EthereumAddress(bytes: [UInt8](repeating: 0, count: 20)))],
                nonce: params.nonce, domain: params.domain)
        }
        // On the Ed25519 backend a seat signs with its own identity, never someone else's key.
        #expect(throws: WireError.self) {
            try ChannelParams(
                participants: params.participants,
                signers: [Fixtures.bob.settlementAddress, Fixtures.alice.settlementAddress], nonce: params.nonce)
        }
    }

    @Test func paramsRoundTripOnBothBackendsAndTheIdFollowsEverySigner() throws {
        let (_, params, _, keys) = try Self.fixture()
        for original in [params, Fixtures.params()] {
            let decoded = try ChannelParams(wireBytes: original.wireBytes)
            #expect(decoded == original)
            #expect(decoded.id == original.id)
            #expect(decoded.backendID == original.backendID)
        }
        let swapped = try ChannelParams(
            participants: params.participants, signers: [keys[1].settlementAddress, keys[0].settlementAddress],
            nonce: params.nonce, challengeDuration: params.challengeDuration, appID: params.appID, domain: params.domain)
        #expect(swapped.id != params.id)
    }
}

/// A state the EVM adjudicator cannot take (more than its 1,024 bytes of app data) could
/// never refute an older one, so the engine signs none on an Ethereum channel; the Ed25519
/// backend keeps the wire's 64 KiB.
@Suite struct EthereumAppDataLimitTests {
    struct OpaqueApp: AppRules {
        var appID: AppID { (try? AppID("test.opaque/1")) ?? .payment }
        func validateTransition(from current: ChannelState, to next: ChannelState, mover: ParticipantIndex) throws(AppRuleViolation) {}
        func validateInitial(_ state: ChannelState) throws(AppRuleViolation) {}
    }

    @Test func anEthereumChannelSignsNoStateWithMoreAppDataThanTheAdjudicatorTakes() throws {
        let alice = try SigningKey(seed: [UInt8](repeating: 31, count: 32))
        let bob = try SigningKey(seed: [UInt8](repeating: 32, count: 32))
        let domain = try SettlementDomain(chainID: 1337, contract: [UInt8](repeating: 0x5f, count: 20))
        let params = try ChannelParams(
            participants: [alice.publicKey, bob.publicKey],
            signers: [alice.settlementKey.settlementAddress, bob.settlementKey.settlementAddress],
            nonce: [UInt8](repeating: 1, count: 32), appID: OpaqueApp().appID, domain: domain)
        let tooLong = [UInt8](repeating: 7, count: EthereumBackend.maxAppDataBytes + 1)
        #expect(throws: OpenRejection.invalidInitialState(.appDataTooLarge(bytes: 1025, limit: 1024))) {
            _ = try ChannelEngine.propose(
                params: params, allocation: Allocation(10, 10), appData: tooLong, key: alice.settlementKey, rules: OpaqueApp())
        }
        let fits = [UInt8](repeating: 7, count: EthereumBackend.maxAppDataBytes)
        _ = try ChannelEngine.propose(
            params: params, allocation: Allocation(10, 10), appData: fits, key: alice.settlementKey, rules: OpaqueApp())
        // On the Ed25519 backend the same app data is fine.
        let ed25519 = try ChannelParams(
            participants: [alice.publicKey, bob.publicKey], nonce: [UInt8](repeating: 1, count: 32), appID: OpaqueApp().appID)
        _ = try ChannelEngine.propose(
            params: ed25519, allocation: Allocation(10, 10), appData: tooLong, key: alice, rules: OpaqueApp())
    }
}
