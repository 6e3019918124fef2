import ArgumentParser
import ParleyChannel
import ParleyWire

/// Amounts on the command line are 128-bit decimal numbers, like every amount in Parley: a
/// deposit in wei can exceed what 64 bits hold.
extension Amount: ExpressibleByArgument {}

/// `ed25519` or `ethereum`.
extension ChannelBackendID: ExpressibleByArgument {
    public init?(argument: String) {
        guard let backend = Self.allCases.first(where: { $0.description == argument }) else { return nil }
        self = backend
    }

    public static var allValueStrings: [String] { allCases.map(\.description) }
}
