/// A node-level message: "I listen on this port". Sent by a listening node on every new
/// session, so a peer that only ever accepted our sessions can still dial us after it
/// restarts. It travels as a session message beside the channel messages, told apart by
/// its first byte, which no `ChannelMessage` format version uses:
///
///     0xF0  kind 0x01  port (2 bytes, big-endian)
///
/// A node that does not know it logs it as undecodable once per session and carries on.
package struct PeerAnnouncement: Equatable {
    static let marker: UInt8 = 0xF0
    static let kind: UInt8 = 0x01

    package let port: UInt16

    package var wireBytes: [UInt8] { [Self.marker, Self.kind, UInt8(port >> 8), UInt8(port & 0xff)] }

    static func isAnnouncement(_ bytes: [UInt8]) -> Bool { bytes.first == marker }

    /// Nil for anything but exactly the four bytes above.
    package init?(wireBytes bytes: [UInt8]) {
        guard bytes.count == 4, bytes[0] == Self.marker, bytes[1] == Self.kind else { return nil }
        port = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
    }

    package init(port: UInt16) { self.port = port }
}
