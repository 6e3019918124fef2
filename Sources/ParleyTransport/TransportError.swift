import ParleyCrypto

/// Why a transport handshake failed. Every failure ends the connection; nothing a peer sends
/// can make the handshake trap.
///
/// Which side sees which case is part of the protocol (Docs/Transport.md, "Errors"):
/// the dialer is ``HandshakeInitiator``, the listener ``HandshakeResponder``.
public enum HandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message does not parse: wrong length, a bad count, versions out of order, trailing
    /// bytes. The associated text says which field. Either side.
    case malformed(String)
    /// The hello does not start with "PRLY": the dialer is not speaking this protocol. Listener only.
    case badMagic
    /// The two sides share no protocol version. The listener knows both lists; the dialer
    /// sees `theirs` empty when the listener closed without replying (the protocol's way of
    /// refusing, which a busy listener uses too: ``SessionCloseReason/tooManyPendingHandshakes``,
    /// ``SessionCloseReason/tooManyHandshakesFromAddress``, ``SessionCloseReason/handshakeRateLimited(_:)``),
    /// or the listener's choice when it picked a version the dialer never offered.
    case noCommonVersion(ours: [UInt16], theirs: [UInt16])
    /// The listener proved a different identity from the one the dialer asked for. Dialer only.
    case unexpectedPeer(expected: PublicKey, got: PublicKey)
    /// A transcript signature does not verify: the messages were altered in transit or the
    /// peer does not hold the identity key it named. Either side.
    case badSignature
    /// The dialer proved its identity, and the listener's policy refused it. Listener only.
    case peerRefused(PublicKey)
    /// The peer's ephemeral key is a low-order point that would force a predictable session
    /// secret. Either side.
    case weakKeyAgreement
    /// A handshake frame is longer than ``Handshake/maxFrameBytes``. Either side.
    case oversize
    /// A handshake step was called after the handshake had finished or failed: a bug in the
    /// caller, reported rather than trapped.
    case outOfOrder(String)

    public var description: String {
        switch self {
        case let .malformed(reason):
            "malformed handshake message: \(reason)"
        case .badMagic:
            "the peer is not speaking the Parley transport protocol (its first message lacks the \"PRLY\" magic)"
        case let .noCommonVersion(ours, theirs) where theirs.isEmpty:
            "the listener closed the connection before replying: it shares none of the protocol versions we offered (\(ours)), or it is busy (too many handshakes in progress or in a short time) and a later attempt may succeed"
        case let .noCommonVersion(ours, theirs):
            "no common protocol version: we support \(ours), the peer \(theirs); upgrade one side"
        case let .unexpectedPeer(expected, got):
            "connected to \(got) but expected \(expected): wrong address, or someone else is listening there"
        case .badSignature:
            "the peer's handshake signature does not verify: the connection was tampered with or the peer is not who it claims"
        case let .peerRefused(key):
            "refused peer \(key): it is not on the list of keys allowed to connect"
        case .weakKeyAgreement:
            "the peer sent a weak ephemeral key that would make the session key predictable"
        case .oversize:
            "a handshake message exceeds \(Handshake.maxFrameBytes) bytes"
        case let .outOfOrder(step):
            "handshake step called out of order: \(step)"
        }
    }
}

/// Why an encrypted frame was refused (``FrameSealer``, ``FrameOpener``).
public enum SecureFrameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame with this index in the receive direction did not authenticate: it was
    /// altered, truncated, replayed, reordered, or sealed under another key. The opener is
    /// dead from now on; close the session.
    case tampered(frameIndex: UInt64)
    /// An earlier frame failed, so this opener refuses everything; close the session.
    case sessionDead
    /// The payload is larger than ``SecureFrames/maxPayloadBytes``; nothing was sealed and
    /// the counter did not move. Split the message.
    case payloadTooLarge(length: Int, limit: Int)
    /// This direction has used every nonce its 64-bit counter allows; reconnect for fresh keys.
    case counterExhausted

    public var description: String {
        switch self {
        case let .tampered(frameIndex):
            "encrypted frame \(frameIndex) did not authenticate (altered, truncated, replayed or reordered); the session is closed"
        case .sessionDead:
            "the session was closed by an earlier frame that did not authenticate"
        case let .payloadTooLarge(length, limit):
            "a frame payload of \(length) bytes exceeds the limit of \(limit) bytes; split it"
        case .counterExhausted:
            "this session has sent or received the maximum number of frames; reconnect to get fresh keys"
        }
    }
}
