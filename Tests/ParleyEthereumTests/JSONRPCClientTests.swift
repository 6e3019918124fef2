import Foundation
import ParleyTestSupport
import Testing

@testable import ParleyEthereum

@Suite struct JSONRPCClientTests {
    /// Found by a filtered test run that trapped in FoundationNetworking ("Session
    /// invalidated"): a call whose deadline passed before its request task even started
    /// returned, its caller dropped the client, the client's `deinit` invalidated the
    /// URLSession, and the late request then started on the invalidated session. Holding
    /// the client in the request fixed that and showed a second trap: the request cancelled
    /// at its deadline while ending on its own ("a task that in not in the registry"), so
    /// requests are no longer cancelled. With a deadline of a nanosecond most of these calls
    /// lose the race to it; none may trap.
    @Test func aClientDroppedWhileItsCallIsStillStartingDoesNotTrap() async throws {
        let refusing = try RefusingPort()
        let url = try #require(URL(string: "http://127.0.0.1:\(refusing.port)"))
        var timeouts = 0
        for _ in 0..<300 {
            let client = JSONRPCClient(endpoint: url, callTimeout: .nanoseconds(1))
            do {
                _ = try await client.call("eth_chainId")
            } catch .timeout {
                timeouts += 1
            } catch {}
        }
        // Let every orphaned request run its course on its (now invalidated) session.
        try await Task.sleep(for: .milliseconds(500))
        #expect(timeouts > 0, "no call lost the race to its deadline, so this test proved nothing")
    }
}
