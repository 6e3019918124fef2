import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyNode
import ParleySettlement
import ParleyTestSupport
import ParleyWire
import Testing

/// Two real nodes over loopback TCP with Ethereum-backend channels on a `LocalChain`:
/// states signed with the secp256k1 keys derived from each identity, checked by EIP-712
/// digest and signer recovery at every step and by the adjudicator on chain.
@Suite struct EthereumChannelNodeTests {
    private func withEthereumCluster(_ body: (APICluster) async throws -> Void) async throws {
        let cluster = try APICluster(chain: LocalEthereumScenarioChain())
        do { try await body(cluster) } catch {
            await cluster.shutDown()
            throw error
        }
        await cluster.shutDown()
    }

    @Test func paymentsBothWaysThenCooperativeCloseOnAnEthereumChannel() async throws {
        try await withEthereumCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let channel = try await alice.node.open(
                with: bob.key.publicKey, at: try await bob.address, deposit: 100, theirs: 50,
                peerSigner: .ethereum(bob.node.ethereumAddress), timeout: .seconds(10))
            let status = try channel.status
            #expect(status.latest.signatures.allSatisfy { $0?.backend == .ethereum })
            let bobChannel = try await peerChannel(channel.id, on: bob)

            try await channel.pay(25)
            let back = try await bobChannel.pay(10)
            #expect(back.state.allocation == Allocation(85, 65))
            #expect(back.signatures.allSatisfy { $0?.backend == .ethereum })

            let payout = try await channel.close()
            #expect(payout == 85)
            #expect(try await alice.account() == startingBalance - 100 + 85)
            try await bobChannel.waitUntilClosed()
            #expect(try await bob.account() == startingBalance - 50 + 65)
            let onChain = try #require(try await cluster.onChain(channel.id))
            #expect(onChain.params.backendID == .ethereum)
            #expect(onChain.concludedAllocation == Allocation(85, 65))
            try await cluster.expectConservation([channel.id])
        }
    }

    @Test func aDisputedEthereumChannelConcludesOnChainWithTheLatestState() async throws {
        try await withEthereumCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let channel = try await alice.node.open(
                with: bob.key.publicKey, at: try await bob.address, deposit: 100, theirs: 100,
                peerSigner: .ethereum(bob.node.ethereumAddress), timeout: .seconds(10))
            _ = try await peerChannel(channel.id, on: bob)
            try await channel.pay(30)
            try await channel.dispute()
            #expect(await eventually { (try? await cluster.onChain(channel.id))?.registeredVersion == 1 })
            try await cluster.chain.advance(by: apiChallenge + 1)
            try await channel.waitUntilClosed()
            #expect(try await cluster.onChain(channel.id)?.concludedAllocation == Allocation(70, 130))
            try await cluster.expectConservation([channel.id])
        }
    }

    /// The opener names an address for the peer that is not the peer's: the peer's engine
    /// will not sign for a seat whose signer is someone else, so no channel opens.
    @Test func openingWithAnAddressThatIsNotThePeersFails() async throws {
        try await withEthereumCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            let stranger = EthereumSigningKey().address
            await #expect(throws: NodeError.self) {
                _ = try await alice.node.open(
                    with: bob.key.publicKey, at: try await bob.address, deposit: 100, theirs: 0,
                    peerSigner: .ethereum(stranger), timeout: .seconds(3))
            }
            #expect(bob.node.channels.isEmpty)
        }
    }

    /// A peer signer under the Ed25519 backend must be the peer's own identity key.
    @Test func anEd25519PeerSignerOtherThanThePeersIdentityIsRefused() async throws {
        try await withEthereumCluster { cluster in
            let alice = try await cluster.start("alice")
            let bob = try await cluster.start("bob")
            await #expect(throws: NodeError.self) {
                _ = try await alice.node.open(
                    with: bob.key.publicKey, at: try await bob.address, deposit: 100, theirs: 0,
                    peerSigner: .ed25519(SigningKey().publicKey), timeout: .seconds(3))
            }
        }
    }
}
