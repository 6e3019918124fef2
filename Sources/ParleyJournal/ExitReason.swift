/// Why the watcher registered a state of its own.
public enum ExitReason: String, Sendable, Equatable, CaseIterable {
    /// The peer did not answer a proposal in time.
    case peerUnresponsive
    /// The peer stayed disconnected longer than the grace period.
    case peerDisconnected
    /// The application asked for it (`dispute`).
    case requested
    /// The channel was not funded within the funding timeout: the node gives it up (our
    /// deposit back if it is in, then closed), instead of leaving it open at version 0.
    case fundingTimedOut

    /// In words, for messages.
    public var explanation: String {
        switch self {
        case .peerUnresponsive: "the peer did not answer in time"
        case .peerDisconnected: "the peer stayed disconnected past the grace period"
        case .requested: "a dispute was requested"
        case .fundingTimedOut: "the channel was not funded in time"
        }
    }
}

extension ExitReason {
    /// The byte the journal stores; numbers are part of the format, never reuse one.
    var code: UInt8 {
        switch self {
        case .peerUnresponsive: 1
        case .peerDisconnected: 2
        case .requested: 3
        case .fundingTimedOut: 4
        }
    }

    init?(code: UInt8) {
        guard let reason = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = reason
    }
}
