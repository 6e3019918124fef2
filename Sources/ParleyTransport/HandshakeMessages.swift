import ParleyCrypto
import ParleyWire

// The three handshake messages and their byte layouts (Docs/Transport.md, "Handshake").
// Each layout has exactly one encoding and decoding rejects everything else, so the
// received bytes can be hashed into the transcript as they are.

/// Message 1, dialer → listener: `"PRLY" || u8 n || n × u16 version || 32-byte ephemeral key`.
package struct HandshakeHello: Equatable, Sendable {
    /// 1...``Handshake/maxOfferedVersions``, strictly increasing.
    package let versions: [UInt16]
    package let ephemeral: AgreementPublicKey

    init(versions: [UInt16], ephemeral: AgreementPublicKey) {
        precondition(Handshake.isValidVersionList(versions), "offered versions must be 1...\(Handshake.maxOfferedVersions) strictly increasing values, got \(versions)")
        self.versions = versions
        self.ephemeral = ephemeral
    }

    package var bytes: [UInt8] {
        var writer = WireWriter(reservingCapacity: Handshake.magic.count + 1 + 2 * versions.count + AgreementPublicKey.byteCount)
        writer.writeFixed(Handshake.magic)
        writer.write(UInt8(versions.count))
        for version in versions { writer.write(version) }
        writer.writeFixed(ephemeral.bytes)
        return writer.bytes
    }

    /// Parses a hello from untrusted bytes. Anything that does not begin like "PRLY" is
    /// ``HandshakeError/badMagic``, so a stray HTTP request or TLS hello is named for what it is.
    package init(decoding payload: [UInt8]) throws(HandshakeError) {
        try Handshake.checkSize(payload)
        guard payload.prefix(Handshake.magic.count).elementsEqual(Handshake.magic.prefix(payload.count)) else {
            throw .badMagic
        }
        var reader = WireReader(payload)
        do {
            _ = try reader.readFixed(Handshake.magic.count, "magic")
            let count = Int(try reader.readUInt8("version count"))
            guard (1...Handshake.maxOfferedVersions).contains(count) else {
                throw HandshakeError.malformed("version count \(count) is outside 1...\(Handshake.maxOfferedVersions)")
            }
            var versions: [UInt16] = []
            for _ in 0..<count { versions.append(try reader.readUInt16("version")) }
            guard Handshake.isValidVersionList(versions) else {
                throw HandshakeError.malformed("versions \(versions) are not strictly increasing")
            }
            let ephemeral = try Handshake.agreementKey(try reader.readFixed(AgreementPublicKey.byteCount, "ephemeral key"))
            try reader.finish()
            self.init(versions: versions, ephemeral: ephemeral)
        } catch {
            throw Handshake.handshakeError(error)
        }
    }
}

/// Message 2, listener → dialer:
/// `u16 version || 32-byte ephemeral key || 32-byte identity key || 64-byte signature over TH2`.
package struct HandshakeReply: Equatable, Sendable {
    static let unsignedByteCount = 2 + AgreementPublicKey.byteCount + PublicKey.byteCount
    static let byteCount = unsignedByteCount + Signature.byteCount

    let version: UInt16
    let ephemeral: AgreementPublicKey
    let identity: PublicKey
    let signature: Signature

    /// The part the signature covers (it is hashed into TH2 after the hello).
    var unsignedBytes: [UInt8] {
        Self.unsignedBytes(version: version, ephemeral: ephemeral, identity: identity)
    }

    package var bytes: [UInt8] { unsignedBytes + signature.bytes }

    static func unsignedBytes(version: UInt16, ephemeral: AgreementPublicKey, identity: PublicKey) -> [UInt8] {
        var writer = WireWriter(reservingCapacity: byteCount)
        writer.write(version)
        writer.writeFixed(ephemeral.bytes)
        writer.write(identity)
        return writer.bytes
    }

    init(version: UInt16, ephemeral: AgreementPublicKey, identity: PublicKey, signature: Signature) {
        self.version = version
        self.ephemeral = ephemeral
        self.identity = identity
        self.signature = signature
    }

    package init(decoding payload: [UInt8]) throws(HandshakeError) {
        try Handshake.checkSize(payload)
        var reader = WireReader(payload)
        do {
            let version = try reader.readUInt16("version")
            let ephemeral = try Handshake.agreementKey(try reader.readFixed(AgreementPublicKey.byteCount, "ephemeral key"))
            let identity = try reader.read(PublicKey.self)
            let signature = try reader.read(Signature.self)
            try reader.finish()
            self.init(version: version, ephemeral: ephemeral, identity: identity, signature: signature)
        } catch {
            throw Handshake.handshakeError(error)
        }
    }
}

/// Message 3, dialer → listener: `32-byte identity key || 64-byte signature over TH3`.
package struct HandshakeAuth: Equatable, Sendable {
    static let byteCount = PublicKey.byteCount + Signature.byteCount

    package let identity: PublicKey
    let signature: Signature

    package var bytes: [UInt8] { identity.bytes + signature.bytes }

    init(identity: PublicKey, signature: Signature) {
        self.identity = identity
        self.signature = signature
    }

    package init(decoding payload: [UInt8]) throws(HandshakeError) {
        try Handshake.checkSize(payload)
        var reader = WireReader(payload)
        do {
            let identity = try reader.read(PublicKey.self)
            let signature = try reader.read(Signature.self)
            try reader.finish()
            self.init(identity: identity, signature: signature)
        } catch {
            throw Handshake.handshakeError(error)
        }
    }
}
