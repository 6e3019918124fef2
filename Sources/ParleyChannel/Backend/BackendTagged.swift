import ParleyWire

/// A value that takes one form per settlement backend (an address, a signature) and
/// travels as the backend's tag followed by that form's fixed bytes.
protocol BackendTagged: WireCodable {
    var backend: ChannelBackendID { get }
    /// The form's fixed bytes, without the tag.
    var bytes: [UInt8] { get }
}

extension BackendTagged {
    public func encode(to writer: inout WireWriter) {
        writer.write(backend.rawValue)
        writer.writeFixed(bytes)
    }

    /// Reads the tag; `field` names the value in the error for an unknown one.
    static func readBackend(_ field: String, from reader: inout WireReader) throws(WireError) -> ChannelBackendID {
        let tag = try reader.readUInt8(field)
        guard let backend = ChannelBackendID(rawValue: tag) else { throw .unknownTag(field: field, tag: tag) }
        return backend
    }
}
