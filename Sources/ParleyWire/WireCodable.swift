/// A value with exactly one canonical byte encoding.
public protocol WireEncodable {
    func encode(to writer: inout WireWriter)
}

/// A value that can be decoded from untrusted bytes without trapping.
public protocol WireDecodable {
    init(from reader: inout WireReader) throws(WireError)
}

public typealias WireCodable = WireEncodable & WireDecodable

extension WireEncodable {
    /// The canonical encoding of this value.
    public var wireBytes: [UInt8] {
        var writer = WireWriter(reservingCapacity: WireWriter.typicalEncodingBytes)
        encode(to: &writer)
        return writer.bytes
    }
}

extension WireDecodable {
    /// Decodes a whole byte string; leftover bytes are an error.
    public init(wireBytes: [UInt8]) throws(WireError) {
        var reader = WireReader(wireBytes)
        self = try Self(from: &reader)
        try reader.finish()
    }
}
