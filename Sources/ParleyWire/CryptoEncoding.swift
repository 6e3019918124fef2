import ParleyCrypto

// Keys, signatures and digests have fixed sizes, so they are written without
// a length prefix.

extension PublicKey: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeFixed(bytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readFixed(PublicKey.byteCount, "public key")
        do { self = try PublicKey(bytes: raw) } catch {
            throw .invalidValue(field: "public key", reason: error.description)
        }
    }
}

extension Signature: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeFixed(bytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readFixed(Signature.byteCount, "signature")
        do { self = try Signature(bytes: raw) } catch {
            throw .invalidValue(field: "signature", reason: error.description)
        }
    }
}

extension Digest: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.writeFixed(bytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readFixed(Digest.byteCount, "digest")
        do { self = try Digest(bytes: raw) } catch {
            throw .invalidValue(field: "digest", reason: error.description)
        }
    }
}
