import ParleyCrypto
import ParleyWire

/// A state with the signatures gathered so far, in seat order.
///
/// Fully signed means both seats signed: that is what the chain accepts and
/// what a peer must show to be believed.
public struct SignedState: Hashable, Sendable {
    public var state: ChannelState
    /// `signatures[i]` belongs to `ParticipantIndex(rawValue: i)`.
    public private(set) var signatures: [Signature?]

    /// `signatures` has one slot per seat: exactly two.
    public init(state: ChannelState, signatures: [Signature?] = [nil, nil]) {
        precondition(signatures.count == 2, "a signed state has exactly two signature slots")
        self.state = state
        self.signatures = signatures
    }

    public subscript(participant: ParticipantIndex) -> Signature? {
        get { signatures[Int(participant.rawValue)] }
        set { signatures[Int(participant.rawValue)] = newValue }
    }

    public var isFullySigned: Bool { signatures.allSatisfy { $0 != nil } }
    public var version: UInt64 { state.version }

    /// Checks that every present signature is valid and, when `requireBoth`, that both are present.
    public func verify(
        against params: ChannelParams, requireBoth: Bool = true
    ) throws(UpdateRejection) {
        guard state.channelID == params.id else {
            throw .wrongChannel(expected: params.id, got: state.channelID)
        }
        let digest = state.signingDigest.bytes
        for participant in ParticipantIndex.allCases {
            guard let signature = self[participant] else {
                if requireBoth { throw .missingSignature(signer: participant) }
                continue
            }
            guard params[participant].isValidSignature(signature, for: digest) else {
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
        var presence: UInt8 = 0
        for (index, signature) in signatures.enumerated() where signature != nil {
            presence |= 1 << UInt8(index)
        }
        writer.write(presence)
        for signature in signatures {
            if let signature { signature.encode(to: &writer) }
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let state = try ChannelState(from: &reader)
        let presence = try reader.readUInt8("signature presence")
        guard presence & ~Self.presenceMask == 0 else {
            throw .invalidValue(field: "signature presence", reason: "only bits 0 and 1 may be set")
        }
        var signatures: [Signature?] = [nil, nil]
        for index in 0..<2 where presence & (1 << UInt8(index)) != 0 {
            signatures[index] = try Signature(from: &reader)
        }
        self.init(state: state, signatures: signatures)
    }
}
