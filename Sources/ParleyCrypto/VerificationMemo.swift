import ParleyLocks
import Synchronization

/// A process-wide memo of Ed25519 verification results, off unless someone turns it on.
///
/// Verification is a pure function of (key, message, signature), so remembering its answer
/// changes no behaviour, only the time it takes. The whole-node simulator turns the memo on:
/// one schedule verifies the same few states again and again (the node on receipt and on
/// every restart, the adversary, the adjudicator, the oracle), and libsodium's verify was
/// over a third of a campaign's time. Signatures made in the process are remembered as valid
/// when they are made (an Ed25519 signature always verifies under the key that made it).
/// Production leaves it off; the only cost there is one
/// relaxed atomic load per verification.
///
/// Only 32-byte messages (the state digests channels sign) are remembered, so a key stays
/// small and exact; any other message is verified every time.
@_spi(Simulation)
public enum VerificationMemo {
    /// Upper bound on remembered answers; the memo forgets everything when it is reached.
    public static let capacity = 65_536

    /// Turns the memo on or off for the whole process. Turning it off forgets everything.
    public static func setEnabled(_ enabled: Bool) {
        state.withLock { $0.removeAll(keepingCapacity: false) }
        isEnabled.store(enabled, ordering: .releasing)
    }

    /// Turns the memo on, once for the process: later calls do nothing, so schedules running
    /// side by side do not wipe each other's answers.
    public static func setEnabledOnce() {
        guard !isEnabled.load(ordering: .acquiring) else { return }
        isEnabled.store(true, ordering: .releasing)
    }

    /// Forgets every remembered answer (the simulator calls this between schedules, so a
    /// campaign's memory stays flat and no schedule depends on the one before).
    public static func reset() {
        state.withLock { $0.removeAll(keepingCapacity: true) }
    }

    static func verify(
        key: [UInt8], signature: [UInt8], message: [UInt8], verifier: () -> Bool
    ) -> Bool {
        guard isEnabled.load(ordering: .acquiring), message.count == 32,
              key.count == 32, signature.count == 64
        else { return verifier() }
        let entry = Entry(key: key, message: message, signature: signature)
        if let known = state.withLock({ $0[entry] }) { return known }
        let answer = verifier()
        state.withLock { memo in
            if memo.count >= capacity { memo.removeAll(keepingCapacity: true) }
            memo[entry] = answer
        }
        return answer
    }

    /// Records a signature this process just made: it verifies under its own key, so the
    /// first check of it (by the peer, the adjudicator or the oracle) need not run libsodium.
    static func remember(key: [UInt8], signature: [UInt8], message: [UInt8]) {
        guard isEnabled.load(ordering: .acquiring), message.count == 32,
              key.count == 32, signature.count == 64
        else { return }
        let entry = Entry(key: key, message: message, signature: signature)
        state.withLock { memo in
            if memo.count >= capacity { memo.removeAll(keepingCapacity: true) }
            memo[entry] = true
        }
    }

    private struct Entry: Hashable {
        let key: [UInt8]
        let message: [UInt8]
        let signature: [UInt8]
    }

    private static let isEnabled = Atomic<Bool>(false)
    private static let state = Locked<[Entry: Bool]>([:])
}
