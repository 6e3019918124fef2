import ParleyCrypto
import ParleyWire

/// The transport handshake, version 1: mutual authentication by Ed25519 identity keys,
/// forward secrecy from ephemeral X25519 keys, version negotiation, and session keys bound
/// to the whole transcript. Docs/Transport.md has the byte layouts and a test vector.
///
/// ```text
/// dialer                                                      listener
///   hello     = "PRLY" || n || versions || eD          ─────▶
///                                                      ◀─────   helloReply = v || eL || idL || sigL(TH2)
///   auth      = idD || sigD(TH3)                       ─────▶
///
/// TH2 = H(hello || v || eL || idL)          signed by the listener's identity
/// TH3 = H(hello || helloReply || idD)       signed by the dialer's identity
/// TH  = H(hello || helloReply || auth)
/// H   = BLAKE2b-256 in the domain "parley/handshake/v1"
/// shared   = X25519(ephemeral secret, peer's ephemeral public key)
/// key d→l  = AEAD.deriveKey("parley/session/d2l/v1", shared, TH)
/// key l→d  = AEAD.deriveKey("parley/session/l2d/v1", shared, TH)
/// ```
///
/// Each message travels as one plaintext frame (4-byte big-endian length, then the
/// payload, at most ``maxFrameBytes``). The state machines here take and return payloads
/// and do no I/O. A listener that shares no version with the dialer sends nothing and
/// closes; the dialer reports that as ``HandshakeError/noCommonVersion(ours:theirs:)``.
///
/// The listener signs before it knows who the dialer is; the dialer's signature covers the
/// listener's identity, and the session keys cover every byte of all three messages, so any
/// change that gets past the signatures (for example an attacker swapping in its own `auth`)
/// leaves the two sides with different keys, and the first encrypted frame fails.
public enum Handshake {
    /// The first four bytes a dialer sends.
    public static let magic: [UInt8] = Array("PRLY".utf8)
    /// Largest handshake frame payload either side accepts. The largest real message is a
    /// hello offering every version: 4 + 1 + 2 × 8 + 32 = 53 bytes.
    public static let maxFrameBytes = 1024
    /// The most protocol versions a hello may offer.
    public static let maxOfferedVersions = 8
    /// The protocol versions this build speaks, lowest first.
    public static let supportedVersions: [UInt16] = [1]

    /// The bytes to write for one handshake message: its length prefix, then `payload`.
    public static func frame(_ payload: [UInt8]) throws(HandshakeError) -> [UInt8] {
        do {
            return try FrameEncoder.frame(payload, maxFrameBytes: maxFrameBytes)
        } catch {
            throw .oversize
        }
    }

    /// A frame decoder that refuses a handshake frame longer than ``maxFrameBytes`` as soon
    /// as its length prefix arrives. Map its errors with ``handshakeError(_:)``.
    public static func frameDecoder() -> FrameDecoder {
        FrameDecoder(maxFrameBytes: maxFrameBytes)
    }

    /// The handshake error for a failure reading handshake frames or messages:
    /// a length over the limit is ``HandshakeError/oversize``, anything else is malformed.
    public static func handshakeError(_ error: any Error) -> HandshakeError {
        switch error {
        case let error as HandshakeError: error
        case WireError.lengthExceedsLimit(field: "frame", _, _): .oversize
        case let error as WireError: .malformed(error.description)
        case let error as CryptoError: .malformed(error.description)
        default: .malformed(String(describing: error))
        }
    }

    /// Whether `versions` may be offered in a hello: 1...``maxOfferedVersions`` values,
    /// strictly increasing (which also rules out duplicates).
    public static func isValidVersionList(_ versions: [UInt16]) -> Bool {
        (1...maxOfferedVersions).contains(versions.count) && zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 }
    }

    static func checkSize(_ payload: [UInt8]) throws(HandshakeError) {
        guard payload.count <= maxFrameBytes else { throw .oversize }
    }

    static func agreementKey(_ bytes: [UInt8]) throws(HandshakeError) -> AgreementPublicKey {
        do { return try AgreementPublicKey(bytes: bytes) } catch { throw .malformed(error.description) }
    }

    /// BLAKE2b-256 in the handshake-transcript domain over the concatenated parts.
    static func transcriptHash(_ parts: [UInt8]...) -> Digest {
        Blake2b.hash256(domain: .handshakeTranscript, parts.flatMap { $0 })
    }

    /// The X25519 secret, with a low-order peer key reported as a handshake error.
    static func agree(_ ephemeral: AgreementKey, with peer: AgreementPublicKey) throws(HandshakeError) -> SecretBytes {
        do { return try ephemeral.sharedSecret(with: peer) } catch { throw .weakKeyAgreement }
    }
}

/// What a completed handshake gives one side: a key per direction and what was agreed.
///
/// `sending` of one side equals `receiving` of the other. Give each key to exactly one
/// ``FrameSealer`` or ``FrameOpener``: two sealers on one key would reuse nonces.
public struct SessionKeys: Sendable {
    /// Seals frames this side sends (``FrameSealer/init(session:)``).
    public let sending: SecretBytes
    /// Opens frames this side receives (``FrameOpener/init(session:)``).
    public let receiving: SecretBytes
    /// The negotiated protocol version.
    public let version: UInt16
    /// TH, the hash of all three handshake messages; the same on both sides.
    public let transcriptHash: Digest
    /// The other side's identity key, proven by its signature over the transcript.
    public let peer: PublicKey

    /// Derives both directions' keys. The shared secret is not kept.
    init(shared: SecretBytes, transcriptHash: Digest, isDialer: Bool, version: UInt16, peer: PublicKey) {
        let dialerToListener = AEAD.deriveKey(.sessionKeyDialerToListener, from: shared, transcript: transcriptHash)
        let listenerToDialer = AEAD.deriveKey(.sessionKeyListenerToDialer, from: shared, transcript: transcriptHash)
        sending = isDialer ? dialerToListener : listenerToDialer
        receiving = isDialer ? listenerToDialer : dialerToListener
        self.version = version
        self.transcriptHash = transcriptHash
        self.peer = peer
    }
}

/// The dialer's side of the handshake: it knows whom it is calling.
///
/// ```swift
/// var handshake = HandshakeInitiator(identity: me, expectedPeer: them)
/// send(try Handshake.frame(handshake.start()))
/// let (auth, session) = try handshake.receive(helloReplyPayload)
/// send(try Handshake.frame(auth))   // then switch to encrypted frames with `session`
/// ```
///
/// Errors from ``receive(_:)``: `.oversize`, `.malformed`, `.unexpectedPeer`,
/// `.badSignature`, `.noCommonVersion` (the listener chose a version we did not offer),
/// `.weakKeyAgreement`. A connection that closes before the reply is
/// ``connectionClosedBeforeReply()``. After any error the initiator is spent.
public struct HandshakeInitiator: Sendable {
    private enum State: Sendable {
        case awaitingReply(AgreementKey)
        case finished
        case failed
    }

    public let expectedPeer: PublicKey
    public let versions: [UInt16]
    private let identity: SigningKey
    private let hello: [UInt8]
    private var state: State

    /// `versions` is what the dialer offers; it must satisfy ``Handshake/isValidVersionList(_:)``
    /// (a configuration error otherwise, which stops the process). Pass `ephemeral` only for
    /// test vectors: a reused ephemeral key gives up forward secrecy.
    public init(
        identity: SigningKey, expectedPeer: PublicKey, versions: [UInt16] = Handshake.supportedVersions,
        ephemeral: AgreementKey = AgreementKey()
    ) {
        self.identity = identity
        self.expectedPeer = expectedPeer
        self.versions = versions
        hello = HandshakeHello(versions: versions, ephemeral: ephemeral.publicKey).bytes
        state = .awaitingReply(ephemeral)
    }

    /// The hello payload to send first. The same bytes every time it is called.
    public func start() -> [UInt8] { hello }

    /// Checks the listener's reply and returns the auth payload to send and the session keys.
    /// The ephemeral secret is dropped whatever the outcome.
    public mutating func receive(_ payload: [UInt8]) throws(HandshakeError) -> (reply: [UInt8], session: SessionKeys) {
        guard case let .awaitingReply(ephemeral) = state else {
            throw .outOfOrder("the dialer's handshake already finished or failed")
        }
        state = .failed
        let reply = try HandshakeReply(decoding: payload)
        guard reply.identity == expectedPeer else {
            throw .unexpectedPeer(expected: expectedPeer, got: reply.identity)
        }
        let signedTranscript = Handshake.transcriptHash(hello, reply.unsignedBytes)
        guard reply.identity.isValidSignature(reply.signature, for: signedTranscript.bytes) else {
            throw .badSignature
        }
        // Checked after the signature: the version is the listener's signed choice, so a
        // man in the middle cannot downgrade it (the offered list is signed too, in `hello`).
        guard versions.contains(reply.version) else {
            throw .noCommonVersion(ours: versions, theirs: [reply.version])
        }
        let shared = try Handshake.agree(ephemeral, with: reply.ephemeral)
        let replyBytes = reply.bytes
        let authTranscript = Handshake.transcriptHash(hello, replyBytes, identity.publicKey.bytes)
        let auth = HandshakeAuth(identity: identity.publicKey, signature: identity.sign(authTranscript.bytes)).bytes
        let session = SessionKeys(
            shared: shared, transcriptHash: Handshake.transcriptHash(hello, replyBytes, auth),
            isDialer: true, version: reply.version, peer: reply.identity)
        state = .finished
        return (auth, session)
    }

    /// The error to report when the listener closes the connection before its reply: by
    /// protocol that is how a listener refuses a hello with no version in common.
    public func connectionClosedBeforeReply() -> HandshakeError {
        .noCommonVersion(ours: versions, theirs: [])
    }
}

/// The listener's side of the handshake: it learns who called and may refuse them.
///
/// ```swift
/// var handshake = HandshakeResponder(identity: me) { allowed.contains($0) }
/// send(try Handshake.frame(try handshake.receiveHello(helloPayload)))
/// let (peer, session) = try handshake.receiveAuth(authPayload)
/// ```
///
/// Errors from ``receiveHello(_:)``: `.oversize`, `.badMagic`, `.malformed`,
/// `.noCommonVersion` (close without replying), `.weakKeyAgreement`. Errors from
/// ``receiveAuth(_:)``: `.oversize`, `.malformed`, `.badSignature`, `.peerRefused`.
/// After any error the responder is spent; close the connection.
public struct HandshakeResponder: Sendable {
    private struct AwaitingAuth: Sendable {
        let hello: [UInt8]
        let reply: [UInt8]
        let shared: SecretBytes
        let version: UInt16
    }

    private enum State: Sendable {
        case awaitingHello(AgreementKey)
        case awaitingAuth(AwaitingAuth)
        case finished
        case failed
    }

    public let versions: [UInt16]
    private let identity: SigningKey
    private let acceptPeer: @Sendable (PublicKey) -> Bool
    private var state: State

    /// `versions` is what the listener speaks, strictly increasing. `acceptPeer` decides,
    /// after the dialer has proven its key, whether to keep the connection.
    public init(
        identity: SigningKey, versions: [UInt16] = Handshake.supportedVersions,
        ephemeral: AgreementKey = AgreementKey(), acceptPeer: @escaping @Sendable (PublicKey) -> Bool
    ) {
        precondition(Handshake.isValidVersionList(versions), "listener versions must be 1...\(Handshake.maxOfferedVersions) strictly increasing values, got \(versions)")
        self.identity = identity
        self.versions = versions
        self.acceptPeer = acceptPeer
        state = .awaitingHello(ephemeral)
    }

    /// Checks the hello, picks the highest version both sides speak, and returns the reply
    /// payload to send. The ephemeral secret is dropped here, whatever the outcome; only the
    /// shared secret is kept until ``receiveAuth(_:)``.
    public mutating func receiveHello(_ payload: [UInt8]) throws(HandshakeError) -> [UInt8] {
        guard case let .awaitingHello(ephemeral) = state else {
            throw .outOfOrder("the listener already received a hello")
        }
        state = .failed
        let hello = try HandshakeHello(decoding: payload)
        let version = try commonVersion(with: hello)
        let shared = try Handshake.agree(ephemeral, with: hello.ephemeral)
        let unsigned = HandshakeReply.unsignedBytes(version: version, ephemeral: ephemeral.publicKey, identity: identity.publicKey)
        let reply = unsigned + identity.sign(Handshake.transcriptHash(payload, unsigned).bytes).bytes
        state = .awaitingAuth(AwaitingAuth(hello: payload, reply: reply, shared: shared, version: version))
        return reply
    }

    /// Runs the checks of ``receiveHello(_:)`` that cost no key exchange or signature (size,
    /// magic, layout, a common version) and throws what it would throw for them. Changes
    /// nothing: a listener calls it to decide whether a hello is worth its budget of
    /// handshake work before calling ``receiveHello(_:)``.
    public func checkHello(_ payload: [UInt8]) throws(HandshakeError) {
        _ = try commonVersion(with: HandshakeHello(decoding: payload))
    }

    /// The highest version both sides speak.
    private func commonVersion(with hello: HandshakeHello) throws(HandshakeError) -> UInt16 {
        guard let version = hello.versions.last(where: versions.contains) else {
            throw .noCommonVersion(ours: versions, theirs: hello.versions)
        }
        return version
    }

    /// Checks the dialer's proof of identity and policy, and returns who it is and the
    /// session keys.
    public mutating func receiveAuth(_ payload: [UInt8]) throws(HandshakeError) -> (peer: PublicKey, session: SessionKeys) {
        guard case let .awaitingAuth(context) = state else {
            throw .outOfOrder("the listener is not waiting for an auth message")
        }
        state = .failed
        let auth = try HandshakeAuth(decoding: payload)
        let signedTranscript = Handshake.transcriptHash(context.hello, context.reply, auth.identity.bytes)
        guard auth.identity.isValidSignature(auth.signature, for: signedTranscript.bytes) else {
            throw .badSignature
        }
        guard acceptPeer(auth.identity) else { throw .peerRefused(auth.identity) }
        let session = SessionKeys(
            shared: context.shared, transcriptHash: Handshake.transcriptHash(context.hello, context.reply, payload),
            isDialer: false, version: context.version, peer: auth.identity)
        state = .finished
        return (auth.identity, session)
    }
}
