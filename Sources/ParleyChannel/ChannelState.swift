import ParleyCrypto
import ParleyWire

/// One version of the channel: what both peers sign and what the chain pays out.
public struct ChannelState: Hashable, Sendable {
    public var channelID: ChannelID
    /// Strictly increasing; the chain honours the highest fully-signed version.
    public var version: UInt64
    public var allocation: Allocation
    /// Opaque to the engine; interpreted by the channel's `AppRules`.
    public var appData: [UInt8]
    /// A final state ends the channel: the chain concludes it at once and no update may follow.
    public var isFinal: Bool

    public init(
        channelID: ChannelID, version: UInt64, allocation: Allocation,
        appData: [UInt8] = [], isFinal: Bool = false
    ) {
        self.channelID = channelID
        self.version = version
        self.allocation = allocation
        self.appData = appData
        self.isFinal = isFinal
    }

    /// The Ed25519 backend's signature of this state by `key`: a shorthand for tests and
    /// tools that build Ed25519 channels. Code that serves any backend signs through
    /// ``ChannelParams/sign(_:with:)``.
    public func signed(by key: SigningKey) -> StateSignature {
        key.signState(Ed25519Backend().signingDigest(of: self, domain: .embedded))
    }
}

extension ChannelState: WireCodable {
    public func encode(to writer: inout WireWriter) {
        channelID.encode(to: &writer)
        writer.write(version)
        allocation.encode(to: &writer)
        writer.writeVariable(appData)
        writer.write(isFinal)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        channelID = try ChannelID(from: &reader)
        version = try reader.readUInt64("version")
        allocation = try Allocation(from: &reader)
        appData = try reader.readVariable(limit: WireLimits.maxAppDataBytes, "app data")
        isFinal = try reader.readBool("final flag")
    }
}
