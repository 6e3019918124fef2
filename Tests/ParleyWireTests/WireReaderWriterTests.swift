import PropertyBased
import Testing

@testable import ParleyWire

@Suite struct WireReaderWriterTests {
    @Test func integersAreBigEndianFixedWidth() throws {
        var writer = WireWriter()
        writer.write(UInt8(0x01))
        writer.write(UInt16(0x0203))
        writer.write(UInt32(0x0405_0607))
        writer.write(UInt64(0x0809_0A0B_0C0D_0E0F))
        #expect(writer.bytes == Array(1...15))
    }

    @Test func integersRoundTripForAnyValue() async throws {
        await propertyCheck(count: 300, input: Gen.uint64(), Gen.uint32(), Gen.uint16()) { a, b, c in
            var writer = WireWriter()
            writer.write(a)
            writer.write(b)
            writer.write(c)
            var reader = WireReader(writer.bytes)
            let decoded = (try reader.readUInt64("a"), try reader.readUInt32("b"), try reader.readUInt16("c"))
            #expect(decoded == (a, b, c))
            try reader.finish()
        }
    }

    @Test func boolsOtherThanZeroOrOneAreRejected() throws {
        for byte in UInt8(2)...UInt8(255) {
            var reader = WireReader([byte])
            #expect(throws: WireError.nonCanonicalBool(field: "flag", byte: byte)) { try reader.readBool("flag") }
        }
        var reader = WireReader([0, 1])
        #expect(try reader.readBool("a") == false)
        #expect(try reader.readBool("b") == true)
    }

    @Test func hugeLengthPrefixIsRefusedBeforeReadingTheBody() throws {
        // 0xFFFFFFFF claims 4 GiB; the limit check must fire, not the truncation check.
        var reader = WireReader([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: WireError.lengthExceedsLimit(field: "blob", length: 0xFFFF_FFFF, limit: 16)) {
            try reader.readVariable(limit: 16, "blob")
        }
    }

    @Test func variableBytesRoundTripWithinTheLimit() async throws {
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...64)) { blob in
            var writer = WireWriter()
            writer.writeVariable(blob)
            #expect(writer.bytes.count == 4 + blob.count)
            var reader = WireReader(writer.bytes)
            let decoded = try reader.readVariable(limit: 64, "blob")
            #expect(decoded == blob)
        }
    }

    @Test func truncatedInputNamesTheField() throws {
        var reader = WireReader([0, 0, 0, 5, 1, 2])
        #expect(throws: WireError.truncated(field: "blob", needed: 5, available: 2)) {
            try reader.readVariable(limit: 16, "blob")
        }
    }

    @Test func trailingBytesAreRejected() throws {
        var reader = WireReader([1, 2, 3])
        _ = try? reader.readUInt16("x")
        #expect(throws: WireError.trailingBytes(count: 1)) { try reader.finish() }
    }

    @Test func errorsReadAsSentences() throws {
        let error = WireError.lengthExceedsLimit(field: "app data", length: 70_000, limit: 65_536)
        #expect(error.description == "app data claims 70000 item(s)/byte(s), more than the limit of 65536")
    }
}
