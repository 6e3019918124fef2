// payment-demo: a shop and a customer settle purchases over a Parley channel.
//
// This is the shape of a payment service built on Parley. Each party runs a `Node`:
// one identity, one fsync'd journal, one settlement adapter, any number of channels.
// Here both nodes live in one process and talk over loopback TCP, and the "chain" is
// the embedded `LocalChain`; in production each node runs in its own service and the
// adapter points at a real chain (for example `DevchainClient` from ParleyDevchain).
//
// The story: the customer locks 200 into a channel with the shop (the shop locks
// nothing), buys three items with off-chain payments, gets one refunded, and closes.
// Only the deposit and the close touch the chain; every purchase is two signatures and
// two journal appends.
//
//   swift run payment-demo

import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyWire

/// What the shop sells, and for how much (in the chain's smallest unit).
let catalog: [(item: String, price: Amount)] = [("coffee", 4), ("bagel", 3), ("paperback", 25)]

func run(in directory: String) async throws {
    // 1. The chain. `LocalChain` runs the same adjudicator rules as every other backend;
    //    its faucet (`mint`) gives the customer money to deposit.
    let chain = LocalChain()
    let shopKey = SigningKey()
    let customerKey = SigningKey()
    try await chain.adapter(for: customerKey.publicKey).mint(1_000, to: customerKey.publicKey)

    // Quiet logs: the demo prints what matters itself.
    var logger = Logger(label: "payment-demo")
    logger.logLevel = .warning

    // 2. The nodes. Each one gets its own key, journal directory and chain adapter
    //    (the adapter signs chain transactions as that key). The shop listens; port 0
    //    picks a free port. The customer only dials out, so it listens nowhere.
    let shop = try await Node(
        identity: shopKey, listen: .loopbackIPv4(port: 0), journal: directory + "/shop",
        settlement: chain.adapter(for: shopKey.publicKey), logger: logger)
    let customer = try await Node(
        identity: customerKey, listen: nil, journal: directory + "/customer",
        settlement: chain.adapter(for: customerKey.publicKey), logger: logger)

    do {
        // 3. The shop's update handler decides on every state the customer proposes. It
        //    accepts money coming in (the default handler would too) and refuses anything
        //    that takes from the shop. A real shop would also match the amount to an order.
        shop.setUpdateHandler { update in
            guard !update.takesFromMe else { return .reject("the shop does not pay on request") }
            if update.amountToMe > 0 { print("  shop: received \(update.amountToMe)") }
            return .accept
        }

        // 4. The customer opens a channel: 200 from the customer, 0 from the shop. `open`
        //    returns once both journals hold the channel and the chain shows it funded.
        guard let shopAddress = await shop.listeningAddress else { throw DemoError("the shop is not listening") }
        let channel = try await customer.open(with: shopKey.publicKey, at: shopAddress, deposit: 200, theirs: 0)
        print("channel \(channel.id.shortID) open and funded: customer 200, shop 0")

        // 5. Purchases. Each `pay` returns once the new state is signed by both sides and
        //    journaled on ours: from then on the shop can claim it on chain, even if the
        //    customer vanishes.
        for (item, price) in catalog {
            let state = try await channel.pay(price)
            print("customer bought a \(item) for \(price) (state v\(state.version))")
        }

        // 6. A refund is just a payment the other way, from the shop's handle on the same
        //    channel. The customer's node accepts it with the default handler.
        guard let shopSide = await shop.channel(channel.id) else { throw DemoError("the shop does not know the channel") }
        let refunded = catalog[1]
        try await shopSide.pay(refunded.price)
        print("shop refunded the \(refunded.item): \(refunded.price)")

        // 7. Balances as each node sees them: the latest state both sides signed.
        let status = try channel.status
        print("in the channel now: customer \(status.myBalance), shop \(status.peerBalance) (v\(status.latest.version))")

        // 8. Close cooperatively: a final state both sign, registered on chain, where it
        //    concludes at once (no challenge window); `close` returns our payout once it
        //    is in our chain account. The shop's watcher withdraws the shop's share.
        let customerPayout = try await channel.close()
        try await shopSide.waitUntilClosed()
        let customerAccount = try await customer.settlement.balance(of: customerKey.publicKey)
        let shopAccount = try await shop.settlement.balance(of: shopKey.publicKey)
        print("closed: customer paid out \(customerPayout)")
        print("on chain: customer \(customerAccount) (of 1000 minted), shop \(shopAccount)")
    } catch {
        await customer.shutDown()
        await shop.shutDown()
        throw error
    }

    // 9. Shut down: sessions, watchers and journals close. The journals stay on disk; a
    //    node started on them again would resume any channel still open.
    await customer.shutDown()
    await shop.shutDown()
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// Journals go to a fresh temporary directory, removed at the end.
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("payment-demo-\(UUID().uuidString)").path
var exitCode: Int32 = 0
do {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try await run(in: directory)
} catch {
    print("payment-demo failed: \(error)")
    exitCode = 1
}
try? FileManager.default.removeItem(atPath: directory)
exit(exitCode)
