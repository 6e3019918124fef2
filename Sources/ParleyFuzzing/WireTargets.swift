import ParleyChannel
import ParleyCrypto
import ParleyNode
import ParleyTransport
import ParleyWire

extension FuzzTargets {
    /// Decodes `bytes` as a `T` with `init(wireBytes:)`; when that succeeds, the value's
    /// canonical encoding must be `bytes` again (one encoding per value, so a signature over
    /// it means one thing).
    static func roundTrip<T: WireCodable>(_ type: T.Type, _ bytes: [UInt8]) throws(FuzzFinding) {
        guard let value = try? T(wireBytes: bytes) else { return }
        try Fuzz.canonical(value.wireBytes, bytes, "\(T.self)")
    }

    /// What a session carries once it is open: every `WireCodable` message and state a peer
    /// sends (channel messages, signed states, parameters…) and the node's own announcement.
    ///
    /// Input: 1 byte choosing the type, then its bytes. Check: decoding either fails with a
    /// `WireError` or yields a value that re-encodes to exactly the input.
    static let wire = FuzzTarget(
        name: "wire",
        summary: "every WireCodable a peer sends: ChannelMessage, SignedState, ChannelState, ChannelParams, …; canonical re-encoding",
        maxInputBytes: 8 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let choice = input.byte()
            let rest = input.rest()
            switch choice % 9 {
            case 0: try roundTrip(ChannelMessage.self, rest)
            case 1: try roundTrip(SignedState.self, rest)
            case 2: try roundTrip(ChannelState.self, rest)
            case 3: try roundTrip(ChannelParams.self, rest)
            case 4: try roundTrip(Allocation.self, rest)
            case 5: try roundTrip(RejectReason.self, rest)
            case 6: try roundTrip(AppID.self, rest)
            case 7: try roundTrip(SettlementDomain.self, rest)
            default:
                if let announcement = PeerAnnouncement(wireBytes: rest) {
                    try Fuzz.canonical(announcement.wireBytes, rest, "PeerAnnouncement")
                }
            }
        },
        seeds: {
            var seeds: [[UInt8]] = []
            for params in Samples.allParams {
                let opening = Samples.state(params, version: 0)
                let next = Samples.state(params, version: 1, moved: 25)
                let final = Samples.state(params, version: 2, moved: 30, final: true)
                let messages: [ChannelMessage] = [
                    .openProposal(OpenProposal(params: params, initial: opening, signature: params.sign(opening, with: Samples.signer(params, 0)))),
                    .openAccept(channelID: params.id, signature: params.sign(opening, with: Samples.signer(params, 1))),
                    .propose(state: next, signature: params.sign(next, with: Samples.signer(params, 0))),
                    .accept(channelID: params.id, version: 1, signature: params.sign(next, with: Samples.signer(params, 1))),
                    .reject(channelID: params.id, version: 1, reason: .declined("not now")),
                    .reject(channelID: params.id, version: 3, reason: .concurrentProposal),
                    .reestablish(channelID: params.id, committedVersion: 1, highestSignedVersion: 2),
                    .commitProof(Samples.signed(params, final)),
                ]
                seeds += messages.map { [0] + $0.wireBytes }
                seeds.append([1] + Samples.signed(params, next).wireBytes)
                seeds.append([2] + Samples.state(params, version: 7, appData: [1, 2, 3]).wireBytes)
                seeds.append([3] + params.wireBytes)
                seeds.append([7] + params.domain.wireBytes)
            }
            seeds.append([4] + Allocation(Amount(5), Amount(UInt128.max)).wireBytes)
            seeds.append([5] + RejectReason.invalid("version 9 skips 8").wireBytes)
            seeds.append([6] + AppID.payment.wireBytes)
            seeds.append([8] + PeerAnnouncement(port: 9735).wireBytes)
            return seeds
        })

    /// The three handshake messages, and the listener's and dialer's state machines fed
    /// hostile ones.
    ///
    /// Input: 1 byte choosing the message (hello, reply, auth) or the exchange, then the
    /// bytes. Checks: a decoded message re-encodes to the input; a listener given a hello and
    /// an auth either fails with a `HandshakeError` or ends with the auth's key as its peer.
    static let handshake = FuzzTarget(
        name: "handshake",
        summary: "HandshakeHello/Reply/Auth decoding (canonical) and HandshakeResponder/Initiator fed hostile messages",
        maxInputBytes: 2 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let choice = input.byte()
            switch choice % 5 {
            case 0:
                let rest = input.rest()
                if let hello = try? HandshakeHello(decoding: rest) { try Fuzz.canonical(hello.bytes, rest, "HandshakeHello") }
            case 1:
                let rest = input.rest()
                if let reply = try? HandshakeReply(decoding: rest) { try Fuzz.canonical(reply.bytes, rest, "HandshakeReply") }
            case 2:
                let rest = input.rest()
                if let auth = try? HandshakeAuth(decoding: rest) { try Fuzz.canonical(auth.bytes, rest, "HandshakeAuth") }
            case 3:
                // The listener's side: a hello, then an auth, from a dialer we do not control.
                let helloLength = Int(input.byte())
                let hello = input.take(helloLength)
                let auth = input.rest()
                var responder = HandshakeKeys.responder()
                guard (try? responder.receiveHello(hello)) != nil else { return }
                do {
                    let (peer, _) = try responder.receiveAuth(auth)
                    guard let claimed = try? HandshakeAuth(decoding: auth) else {
                        throw FuzzFinding("the listener accepted an auth that does not decode")
                    }
                    try Fuzz.check(peer == claimed.identity, "the listener's peer is not the key the auth proved")
                } catch let error as FuzzFinding {
                    throw error
                } catch {
                    return
                }
            default:
                // The dialer's side: a reply from a listener we do not control.
                var initiator = HandshakeKeys.initiator()
                do {
                    _ = try initiator.receive(input.rest())
                    // Only the real listener's key can sign a reply the dialer accepts.
                } catch {
                    return
                }
            }
        },
        seeds: {
            var initiator = HandshakeKeys.initiator()
            var responder = HandshakeKeys.responder()
            let hello = initiator.start()
            guard let reply = try? responder.receiveHello(hello), let (auth, _) = try? initiator.receive(reply) else { return [] }
            return [
                [0] + hello, [1] + reply, [2] + auth,
                [3, UInt8(hello.count)] + hello + auth,
                [4] + reply,
            ]
        })
}

/// Fixed identities and ephemeral keys, so the seeds' handshake replays exactly: the
/// responder's reply and the dialer's auth are valid for these keys, which lets the fuzzer
/// start from messages that pass every check.
enum HandshakeKeys {
    static func responder() -> HandshakeResponder {
        HandshakeResponder(identity: Samples.bob, ephemeral: ephemeral(0x21), acceptPeer: { _ in true })
    }

    static func initiator() -> HandshakeInitiator {
        HandshakeInitiator(identity: Samples.alice, expectedPeer: Samples.bob.publicKey, ephemeral: ephemeral(0x12))
    }

    private static func ephemeral(_ byte: UInt8) -> AgreementKey {
        // A 32-byte secret is always accepted (X25519 clamps it).
        guard let key = try? AgreementKey(secret: [UInt8](repeating: byte, count: AgreementKey.secretByteCount)) else {
            preconditionFailure("a 32-byte X25519 secret is always valid")
        }
        return key
    }
}
