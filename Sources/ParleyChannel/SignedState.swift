import ParleyCrypto
import ParleyWire

/// A state with the signatures gathered so far, in seat order.
///
/// Fully signed means both seats signed: that is what the chain accepts and
/// what a peer must show to be believed.
public struct SignedState: Hashable, Sendable {
    public var state: ChannelState
    private var seats = PerSeat<StateSignature?>(nil, nil)

    /// `signatures[i]` belongs to `ParticipantIndex(rawValue: i)`.
    public var signatures: [StateSignature?] { seats.array }

    /// `signatures` has one slot per seat: exactly two.
    public init(state: ChannelState, signatures: [StateSignature?] = [nil, nil]) {
        precondition(signatures.count == 2, "a signed state has exactly two signature slots")
        self.state = state
        seats = PerSeat(signatures[0], signatures[1])
    }

    /// A state with no signatures yet, without building a signature array (the update path).
    init(unsigned state: ChannelState) {
        self.state = state
    }

    public subscript(participant: ParticipantIndex) -> StateSignature? {
        get { seats[participant] }
        set { seats[participant] = newValue }
    }

    public var isFullySigned: Bool { seats.first != nil && seats.second != nil }
    public var version: UInt64 { state.version }

    /// Checks that every present signature is valid and, when `requireBoth`, that both are present.
    public func verify(
        against params: ChannelParams, requireBoth: Bool = true
    ) throws(UpdateRejection) {
        guard state.channelID == params.id else {
            throw .wrongChannel(expected: params.id, got: state.channelID)
        }
        let digest = params.signingDigest(of: state)
        for participant in ParticipantIndex.allCases {
            guard let signature = self[participant] else {
                if requireBoth { throw .missingSignature(signer: participant) }
                continue
            }
            guard params.isValid(signature, of: digest, by: participant) else {
                throw .badSignature(signer: participant)
            }
        }
    }
}

extension SignedState: WireCodable {
    /// Bit i of the presence byte says whether seat i's signature follows.
    private static let presenceMask: UInt8 = 0b11

    public func encode(to writer: inout WireWriter) {
        state.encode(to: &writer)
        let presence: UInt8 = (seats.first == nil ? 0 : 0b01) | (seats.second == nil ? 0 : 0b10)
        writer.write(presence)
        seats.first?.encode(to: &writer)
        seats.second?.encode(to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let state = try ChannelState(from: &reader)
        let presence = try reader.readUInt8("signature presence")
        guard presence & ~Self.presenceMask == 0 else {
            throw .invalidValue(field: "signature presence", reason: "only bits 0 and 1 may be set")
        }
        self.init(unsigned: state)
        if presence & 0b01 != 0 { seats.first = try StateSignature(from: &reader) }
        if presence & 0b10 != 0 { seats.second = try StateSignature(from: &reader) }
    }
}
