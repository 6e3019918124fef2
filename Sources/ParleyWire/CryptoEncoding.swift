import ParleyCrypto

/// Keys, signatures and digests: fixed-size byte strings written without a length prefix.
protocol FixedSizeCryptoValue: WireCodable {
    static var byteCount: Int { get }
    static var wireField: String { get }
    var bytes: [UInt8] { get }
    init(bytes: some Collection<UInt8>) throws(CryptoError)
}

extension FixedSizeCryptoValue {
    public func encode(to writer: inout WireWriter) {
        writer.writeFixed(bytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readFixed(Self.byteCount, Self.wireField)
        do { self = try Self(bytes: raw) } catch {
            throw .invalidValue(field: Self.wireField, reason: error.description)
        }
    }
}

extension PublicKey: FixedSizeCryptoValue {
    static var wireField: String { "public key" }
}

extension Signature: FixedSizeCryptoValue {
    static var wireField: String { "signature" }
}

extension Digest: FixedSizeCryptoValue {
    static var wireField: String { "digest" }
}

extension EthereumAddress: FixedSizeCryptoValue {
    static var wireField: String { "Ethereum address" }
}

extension RecoverableSignature: FixedSizeCryptoValue {
    static var wireField: String { "secp256k1 signature" }
}
