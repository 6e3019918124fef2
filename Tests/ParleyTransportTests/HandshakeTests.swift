import Foundation
import ParleyWire
import Testing

@testable import ParleyCrypto
@testable import ParleyTransport

/// The handshake's fixed inputs and exact outputs, also printed in Docs/Transport.md.
private enum HandshakeVector {
    static let dialerSeed = [UInt8](repeating: 0x01, count: 32)
    static let listenerSeed = [UInt8](repeating: 0x02, count: 32)
    static let dialerEphemeralSecret = [UInt8](repeating: 0x03, count: 32)
    static let listenerEphemeralSecret = [UInt8](repeating: 0x04, count: 32)

    static let hello = "50524c590100015dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22"
    static let helloReply =
        "0001ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10b"
        + "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
        + "ba2eab4c504877709caf0fedb74492ec8f9fbe9c77b87586a1c9d5563fe8d1a9"
        + "95ed897657918bc72c03a7f35d87f7e0166996f69f66e543a7554c63f12bd502"
    static let auth =
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        + "c5a0c0c2e7a950d2d425c37b02e48e03199135478cb09ce5f787ad3b8a2603b5"
        + "81a8c4480fb5c340b19a009b8b85f7c9a080f2c037db4634fd643a4c649fd902"
    static let transcriptHash = "daa57e0f8240e7e32ee4b0e507656b3c428a9509e4093407db1a2749e44a4435"
    static let keyDialerToListener = "878ac8636ce7b6276c10262cb3cc9639177dbe52660a036c211348abb2e505d5"
    static let keyListenerToDialer = "c5c008f919ec74f4b7771a89483b1692a63497efd89d564a68e51dc4895025e5"
    /// The first frames of the session: "ping" twice from the dialer, "pong" from the listener.
    static let dialerFrames = [
        "00000014451466c39ca56f13a2d6e0307bb598de52b43087",
        "000000149b593d27e2d5e439b5e0378ea4160f2920a84d97",
    ]
    static let listenerFrame = "0000001436d312d64dd80b33048e341d71327e7187e930e1"
}

/// Two identities and helpers to run the handshake between them in memory.
private struct Peers {
    let dialer = SigningKey()
    let listener = SigningKey()

    func initiator(versions: [UInt16] = [1], expecting: PublicKey? = nil, ephemeral: AgreementKey = AgreementKey())
        -> HandshakeInitiator
    {
        HandshakeInitiator(identity: dialer, expectedPeer: expecting ?? listener.publicKey, versions: versions, ephemeral: ephemeral)
    }

    func responder(
        versions: [UInt16] = [1], ephemeral: AgreementKey = AgreementKey(),
        accept: @escaping @Sendable (PublicKey) -> Bool = { _ in true }
    ) -> HandshakeResponder {
        HandshakeResponder(identity: listener, versions: versions, ephemeral: ephemeral, acceptPeer: accept)
    }
}

/// Both sides' results of a handshake that completed.
private struct Completed {
    let hello: [UInt8]
    let reply: [UInt8]
    let auth: [UInt8]
    let dialer: SessionKeys
    let listener: SessionKeys
    let learnedPeer: PublicKey
}

private func run(_ initiator: inout HandshakeInitiator, _ responder: inout HandshakeResponder) throws -> Completed {
    let hello = initiator.start()
    let reply = try responder.receiveHello(hello)
    let (auth, dialerSession) = try initiator.receive(reply)
    let (peer, listenerSession) = try responder.receiveAuth(auth)
    return Completed(hello: hello, reply: reply, auth: auth, dialer: dialerSession, listener: listenerSession, learnedPeer: peer)
}

private func keyBytes(_ secret: SecretBytes) -> [UInt8] { secret.withUnsafeBytes { Array($0) } }

private func flipped(_ bytes: [UInt8], at index: Int) -> [UInt8] {
    var copy = bytes
    copy[index] ^= 0x01
    return copy
}

@Suite struct HandshakeTests {
    private let peers = Peers()

    // MARK: success

    @Test func handshakeGivesMatchingKeysAndTellsTheListenerWhoDialed() throws {
        var initiator = peers.initiator()
        var responder = peers.responder()
        let done = try run(&initiator, &responder)
        #expect(done.learnedPeer == peers.dialer.publicKey)
        #expect(done.listener.peer == peers.dialer.publicKey)
        #expect(done.dialer.peer == peers.listener.publicKey)
        #expect(keyBytes(done.dialer.sending) == keyBytes(done.listener.receiving))
        #expect(keyBytes(done.dialer.receiving) == keyBytes(done.listener.sending))
        #expect(keyBytes(done.dialer.sending) != keyBytes(done.dialer.receiving))
        #expect(done.dialer.transcriptHash == done.listener.transcriptHash)
        #expect(done.dialer.version == 1 && done.listener.version == 1)
        #expect(done.hello.count == 39 && done.reply.count == 130 && done.auth.count == 96)
    }

    @Test func sessionKeysCarryFramesBothWays() throws {
        var initiator = peers.initiator()
        var responder = peers.responder()
        let done = try run(&initiator, &responder)
        var dialerSealer = FrameSealer(session: done.dialer)
        var listenerOpener = FrameOpener(session: done.listener)
        var listenerSealer = FrameSealer(session: done.listener)
        var dialerOpener = FrameOpener(session: done.dialer)
        #expect(try listenerOpener.open(try dialerSealer.seal(Array("propose".utf8))) == Array("propose".utf8))
        #expect(try dialerOpener.open(try listenerSealer.seal(Array("accept".utf8))) == Array("accept".utf8))
    }

    @Test func everySessionHasFreshKeys() throws {
        var firstInitiator = peers.initiator()
        var firstResponder = peers.responder()
        var secondInitiator = peers.initiator()
        var secondResponder = peers.responder()
        let first = try run(&firstInitiator, &firstResponder)
        let second = try run(&secondInitiator, &secondResponder)
        #expect(keyBytes(first.dialer.sending) != keyBytes(second.dialer.sending))
        #expect(first.dialer.transcriptHash != second.dialer.transcriptHash)
    }

    @Test func highestCommonVersionIsChosen() throws {
        var initiator = peers.initiator(versions: [1, 2, 5])
        var responder = peers.responder(versions: [1, 2, 3])
        let done = try run(&initiator, &responder)
        #expect(done.dialer.version == 2 && done.listener.version == 2)
    }

    @Test func ephemeralSecretsAreDroppedOnceUsed() throws {
        weak var dialerEphemeral: AgreementKey?
        weak var listenerEphemeral: AgreementKey?
        var initiator: HandshakeInitiator
        var responder: HandshakeResponder
        do {
            let dialerKey = AgreementKey()
            let listenerKey = AgreementKey()
            dialerEphemeral = dialerKey
            listenerEphemeral = listenerKey
            initiator = peers.initiator(ephemeral: dialerKey)
            responder = peers.responder(ephemeral: listenerKey)
        }
        let reply = try responder.receiveHello(initiator.start())
        #expect(listenerEphemeral == nil)
        #expect(dialerEphemeral != nil)
        _ = try initiator.receive(reply)
        #expect(dialerEphemeral == nil)
    }

    @Test func handshakeFramesRoundTripThroughTheFrameCodec() throws {
        let initiator = peers.initiator()
        var decoder = Handshake.frameDecoder()
        decoder.append(try Handshake.frame(initiator.start()))
        #expect(try decoder.nextFrame() == initiator.start())
    }

    // MARK: test vector

    @Test func fixedKeysGiveTheDocumentedHandshake() throws {
        let dialer = try SigningKey(seed: HandshakeVector.dialerSeed)
        let listener = try SigningKey(seed: HandshakeVector.listenerSeed)
        var initiator = HandshakeInitiator(
            identity: dialer, expectedPeer: listener.publicKey,
            ephemeral: try AgreementKey(secret: HandshakeVector.dialerEphemeralSecret))
        var responder = HandshakeResponder(
            identity: listener, ephemeral: try AgreementKey(secret: HandshakeVector.listenerEphemeralSecret),
            acceptPeer: { _ in true })
        let done = try run(&initiator, &responder)
        #expect(Hex.encode(done.hello) == HandshakeVector.hello)
        #expect(Hex.encode(done.reply) == HandshakeVector.helloReply)
        #expect(Hex.encode(done.auth) == HandshakeVector.auth)
        #expect(done.dialer.transcriptHash.hex == HandshakeVector.transcriptHash)
        #expect(Hex.encode(keyBytes(done.dialer.sending)) == HandshakeVector.keyDialerToListener)
        #expect(Hex.encode(keyBytes(done.dialer.receiving)) == HandshakeVector.keyListenerToDialer)
        #expect(Hex.encode(keyBytes(done.listener.receiving)) == HandshakeVector.keyDialerToListener)
        #expect(Hex.encode(keyBytes(done.listener.sending)) == HandshakeVector.keyListenerToDialer)

        var dialerSealer = FrameSealer(session: done.dialer)
        var listenerSealer = FrameSealer(session: done.listener)
        #expect(try Hex.encode(dialerSealer.sealFrame(Array("ping".utf8))) == HandshakeVector.dialerFrames[0])
        #expect(try Hex.encode(dialerSealer.sealFrame(Array("ping".utf8))) == HandshakeVector.dialerFrames[1])
        #expect(try Hex.encode(listenerSealer.sealFrame(Array("pong".utf8))) == HandshakeVector.listenerFrame)
    }

    // MARK: identity and policy

    @Test func dialerRefusesAListenerWithAnotherKey() throws {
        let impostor = SigningKey()
        var initiator = peers.initiator(expecting: impostor.publicKey)
        var responder = peers.responder()
        let reply = try responder.receiveHello(initiator.start())
        #expect(throws: HandshakeError.unexpectedPeer(expected: impostor.publicKey, got: peers.listener.publicKey)) {
            try initiator.receive(reply)
        }
    }

    @Test func listenerRefusesAKeyItDoesNotKnow() throws {
        let allowed = SigningKey().publicKey
        var initiator = peers.initiator()
        var responder = peers.responder { $0 == allowed }
        let (auth, _) = try initiator.receive(try responder.receiveHello(initiator.start()))
        #expect(throws: HandshakeError.peerRefused(peers.dialer.publicKey)) { try responder.receiveAuth(auth) }
    }

    @Test func swappedAuthLeavesTheSidesWithDifferentKeys() throws {
        // A man in the middle replaces the dialer's auth with one signed by its own key: the
        // signatures all verify, but the transcripts differ, so no frame gets through.
        let attacker = SigningKey()
        var initiator = peers.initiator()
        var responder = peers.responder()
        let hello = initiator.start()
        let reply = try responder.receiveHello(hello)
        let (_, dialerSession) = try initiator.receive(reply)
        let forgedTranscript = Handshake.transcriptHash(hello, reply, attacker.publicKey.bytes)
        let forged = HandshakeAuth(identity: attacker.publicKey, signature: attacker.sign(forgedTranscript.bytes)).bytes
        let (peer, listenerSession) = try responder.receiveAuth(forged)
        #expect(peer == attacker.publicKey)
        var sealer = FrameSealer(session: dialerSession)
        var opener = FrameOpener(session: listenerSession)
        #expect(throws: SecureFrameError.tampered(frameIndex: 0)) { try opener.open(try sealer.seal([1])) }
    }

    // MARK: versions

    @Test func noCommonVersionIsRefusedByTheListenerAndReportedByTheDialer() throws {
        let initiator = peers.initiator(versions: [2, 3])
        var responder = peers.responder(versions: [1])
        #expect(throws: HandshakeError.noCommonVersion(ours: [1], theirs: [2, 3])) {
            try responder.receiveHello(initiator.start())
        }
        #expect(initiator.connectionClosedBeforeReply() == .noCommonVersion(ours: [2, 3], theirs: []))
    }

    @Test func listenerChoosingAVersionNotOfferedIsRefused() throws {
        let listenerEphemeral = AgreementKey()
        var initiator = peers.initiator(versions: [1])
        let unsigned = HandshakeReply.unsignedBytes(
            version: 7, ephemeral: listenerEphemeral.publicKey, identity: peers.listener.publicKey)
        let signature = peers.listener.sign(Handshake.transcriptHash(initiator.start(), unsigned).bytes)
        #expect(throws: HandshakeError.noCommonVersion(ours: [1], theirs: [7])) {
            try initiator.receive(unsigned + signature.bytes)
        }
    }

    @Test(arguments: [
        (count: 0, versions: [UInt16]()),
        (count: 9, versions: Array(1...9)),
        (count: 2, versions: [2, 1]),
        (count: 2, versions: [1, 1]),
    ] as [(count: UInt8, versions: [UInt16])])
    func helloWithABadVersionListIsMalformed(hello: (count: UInt8, versions: [UInt16])) {
        var payload = Handshake.magic + [hello.count]
        for version in hello.versions { payload += [UInt8(version >> 8), UInt8(version & 0xff)] }
        payload += AgreementKey().publicKey.bytes
        var responder = peers.responder()
        expectMalformed { try responder.receiveHello(payload) }
    }

    // MARK: tampering, byte by byte

    @Test func everyTamperedHelloByteFailsTheHandshake() throws {
        let template = peers.initiator().start()
        for index in template.indices {
            var initiator = peers.initiator(ephemeral: AgreementKey())
            var responder = peers.responder()
            let tampered = flipped(initiator.start(), at: index)
            let expected: HandshakeError =
                switch index {
                case 0..<4: .badMagic
                case 4: .malformed("version count 0 is outside 1...8")
                case 5, 6: .noCommonVersion(ours: [1], theirs: [tampered[5...6].reduce(0) { $0 << 8 | UInt16($1) }])
                default: .badSignature
                }
            if index < 7 {
                #expect(throws: expected, "byte \(index)") { try responder.receiveHello(tampered) }
            } else {
                let reply = try responder.receiveHello(tampered)
                #expect(throws: expected, "byte \(index)") { try initiator.receive(reply) }
            }
        }
    }

    @Test func everyTamperedReplyByteFailsTheHandshake() throws {
        for index in 0..<HandshakeReply.byteCount {
            var initiator = peers.initiator()
            var responder = peers.responder()
            let reply = flipped(try responder.receiveHello(initiator.start()), at: index)
            let expected: HandshakeError =
                if (34..<66).contains(index) {
                    .unexpectedPeer(expected: peers.listener.publicKey, got: try PublicKey(bytes: reply[34..<66]))
                } else {
                    .badSignature
                }
            #expect(throws: expected, "byte \(index)") { try initiator.receive(reply) }
        }
    }

    @Test func everyTamperedAuthByteFailsTheHandshake() throws {
        for index in 0..<HandshakeAuth.byteCount {
            var initiator = peers.initiator()
            var responder = peers.responder()
            let (auth, _) = try initiator.receive(try responder.receiveHello(initiator.start()))
            #expect(throws: HandshakeError.badSignature, "byte \(index)") {
                try responder.receiveAuth(flipped(auth, at: index))
            }
        }
    }

    // MARK: weak keys

    @Test func helloWithALowOrderEphemeralKeyIsRefused() {
        let hello = Handshake.magic + [1, 0, 1] + [UInt8](repeating: 0, count: 32)
        var responder = peers.responder()
        #expect(throws: HandshakeError.weakKeyAgreement) { try responder.receiveHello(hello) }
    }

    @Test func signedReplyWithALowOrderEphemeralKeyIsRefused() throws {
        var initiator = peers.initiator()
        let lowOrder = try AgreementPublicKey(bytes: [UInt8](repeating: 0, count: 32))
        let unsigned = HandshakeReply.unsignedBytes(version: 1, ephemeral: lowOrder, identity: peers.listener.publicKey)
        let signature = peers.listener.sign(Handshake.transcriptHash(initiator.start(), unsigned).bytes)
        #expect(throws: HandshakeError.weakKeyAgreement) { try initiator.receive(unsigned + signature.bytes) }
    }

    // MARK: garbage, truncation, oversize

    @Test func everyTruncatedMessageIsMalformed() throws {
        var initiator = peers.initiator()
        var responder = peers.responder()
        let hello = initiator.start()
        let reply = try responder.receiveHello(hello)
        let (auth, _) = try initiator.receive(reply)
        for count in 0..<hello.count {
            var fresh = peers.responder()
            expectMalformed { try fresh.receiveHello(Array(hello.prefix(count))) }
        }
        for count in 0..<reply.count {
            var fresh = peers.initiator()
            expectMalformed { try fresh.receive(Array(reply.prefix(count))) }
        }
        for count in 0..<auth.count {
            var waiting = peers.responder()
            _ = try waiting.receiveHello(peers.initiator().start())
            expectMalformed { try waiting.receiveAuth(Array(auth.prefix(count))) }
        }
    }

    @Test func trailingBytesAreMalformed() throws {
        var initiator = peers.initiator()
        var responder = peers.responder()
        expectMalformed { try responder.receiveHello(initiator.start() + [0]) }
        var listener = peers.responder()
        let reply = try listener.receiveHello(initiator.start())
        expectMalformed { try initiator.receive(reply + [0]) }
    }

    /// Replay a run: `PARLEY_HANDSHAKE_SEED=<seed> swift test --filter randomGarbageNeverCompletesAHandshake`.
    @Test func randomGarbageNeverCompletesAHandshake() throws {
        let seed = ProcessInfo.processInfo.environment["PARLEY_HANDSHAKE_SEED"].flatMap { UInt64($0) } ?? SecureRandom.uint64()
        print("randomGarbageNeverCompletesAHandshake seed: \(seed)")
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let count = Int.random(in: 0...(Handshake.maxFrameBytes + 8), using: &random)
            var garbage = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            if Bool.random(using: &random), count >= 4 { garbage.replaceSubrange(0..<4, with: Handshake.magic) }
            var responder = peers.responder()
            #expect(throws: HandshakeError.self, "seed \(seed)") { try responder.receiveHello(garbage) }
            var initiator = peers.initiator()
            #expect(throws: HandshakeError.self, "seed \(seed)") { try initiator.receive(garbage) }
            var waiting = peers.responder()
            _ = try waiting.receiveHello(peers.initiator().start())
            #expect(throws: HandshakeError.self, "seed \(seed)") { try waiting.receiveAuth(garbage) }
        }
    }

    @Test func oversizeMessagesAreRefusedBeforeParsing() throws {
        let oversize = Handshake.magic + [UInt8](repeating: 0, count: Handshake.maxFrameBytes)
        var responder = peers.responder()
        #expect(throws: HandshakeError.oversize) { try responder.receiveHello(oversize) }
        var initiator = peers.initiator()
        #expect(throws: HandshakeError.oversize) { try initiator.receive(oversize) }
        var waiting = peers.responder()
        _ = try waiting.receiveHello(peers.initiator().start())
        #expect(throws: HandshakeError.oversize) { try waiting.receiveAuth(oversize) }
        #expect(throws: HandshakeError.oversize) { try Handshake.frame(oversize) }
    }

    @Test func oversizeLengthPrefixIsRefusedBeforeTheBodyArrives() {
        var decoder = Handshake.frameDecoder()
        let length = UInt32(Handshake.maxFrameBytes + 1)
        decoder.append([UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)])
        let error = #expect(throws: WireError.self) { try decoder.nextFrame() }
        #expect(error.map(Handshake.handshakeError) == .oversize)
    }

    // MARK: misuse

    @Test func stepsAfterTheEndOrAFailureAreOutOfOrder() throws {
        var initiator = peers.initiator()
        var responder = peers.responder()
        let done = try run(&initiator, &responder)
        expectOutOfOrder { try initiator.receive(done.reply) }
        expectOutOfOrder { try responder.receiveHello(done.hello) }
        expectOutOfOrder { try responder.receiveAuth(done.auth) }

        var early = peers.responder()
        expectOutOfOrder { try early.receiveAuth(done.auth) }

        var failed = peers.initiator()
        #expect(throws: HandshakeError.self) { try failed.receive([]) }
        expectOutOfOrder { try failed.receive(done.reply) }
    }
}

private func expectMalformed<R>(_ body: () throws -> R, sourceLocation: SourceLocation = #_sourceLocation) {
    let error = #expect(throws: HandshakeError.self, sourceLocation: sourceLocation) { try body() }
    if let error, case .malformed = error { return }
    Issue.record("expected .malformed, got \(String(describing: error))", sourceLocation: sourceLocation)
}

private func expectOutOfOrder<R>(_ body: () throws -> R, sourceLocation: SourceLocation = #_sourceLocation) {
    let error = #expect(throws: HandshakeError.self, sourceLocation: sourceLocation) { try body() }
    if let error, case .outOfOrder = error { return }
    Issue.record("expected .outOfOrder, got \(String(describing: error))", sourceLocation: sourceLocation)
}
