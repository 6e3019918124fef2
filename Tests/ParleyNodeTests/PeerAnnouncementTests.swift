import Testing

@testable import ParleyNode

/// The node-level announcement's bytes: exactly four, and anything else is not one.
@Suite struct PeerAnnouncementTests {
    @Test func roundTripsAndRefusesEveryOtherShape() {
        for port: UInt16 in [1, 7001, 65535] {
            let bytes = PeerAnnouncement(port: port).wireBytes
            #expect(PeerAnnouncement.isAnnouncement(bytes))
            #expect(PeerAnnouncement(wireBytes: bytes) == PeerAnnouncement(port: port))
        }
        #expect(PeerAnnouncement(wireBytes: [0xF0, 0x01, 0x1b]) == nil)
        #expect(PeerAnnouncement(wireBytes: [0xF0, 0x01, 0x1b, 0x59, 0x00]) == nil)
        #expect(PeerAnnouncement(wireBytes: [0xF0, 0x02, 0x1b, 0x59]) == nil)
        #expect(!PeerAnnouncement.isAnnouncement([2, 1, 0, 0]), "a channel message (format version 2) is not one")
    }
}
