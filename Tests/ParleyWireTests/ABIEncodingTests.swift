import Testing

@testable import ParleyWire

/// Every expected encoding here was produced by eth-abi 6.0 (`eth_abi.encode`), an
/// independent implementation of the same specification.
@Suite struct ABIEncodingTests {
    @Test func staticValuesAreOneWordEach() {
        let address = hexBytes("2c7536e3605d9c16a7a3d7b1898e529396a65c23")
        let encoded = ABI.encode([.uint(7), .address(address), .bool(true), .fixedBytes([UInt8](repeating: 0x11, count: 32))])
        #expect(
            hexString(encoded)
                == "0000000000000000000000000000000000000000000000000000000000000007"
                + "0000000000000000000000002c7536e3605d9c16a7a3d7b1898e529396a65c23"
                + "0000000000000000000000000000000000000000000000000000000000000001"
                + "1111111111111111111111111111111111111111111111111111111111111111")
    }

    @Test func dynamicBytesAndStringsGoToTheTail() {
        let encoded = ABI.encode([.bytes([1, 2, 3]), .fixedArray([.uint(5), .amount(.max)]), .string("parley")])
        #expect(
            hexString(encoded)
                == "0000000000000000000000000000000000000000000000000000000000000080"
                + "0000000000000000000000000000000000000000000000000000000000000005"
                + "00000000000000000000000000000000ffffffffffffffffffffffffffffffff"
                + "00000000000000000000000000000000000000000000000000000000000000c0"
                + "0000000000000000000000000000000000000000000000000000000000000003"
                + "0102030000000000000000000000000000000000000000000000000000000000"
                + "0000000000000000000000000000000000000000000000000000000000000006"
                + "7061726c65790000000000000000000000000000000000000000000000000000")
    }

    @Test func arraysOfDynamicTuplesNestTheirOffsets() {
        let encoded = ABI.encode([
            .array([.tuple([.uint(1), .bytes([])]), .tuple([.uint(2), .bytes([UInt8](repeating: 0xaa, count: 33))])]),
            .fixedBytes([0xbe, 0xef]),
        ])
        #expect(
            hexString(encoded)
                == "0000000000000000000000000000000000000000000000000000000000000040"
                + "beef000000000000000000000000000000000000000000000000000000000000"
                + "0000000000000000000000000000000000000000000000000000000000000002"
                + "0000000000000000000000000000000000000000000000000000000000000040"
                + "00000000000000000000000000000000000000000000000000000000000000a0"
                + "0000000000000000000000000000000000000000000000000000000000000001"
                + "0000000000000000000000000000000000000000000000000000000000000040"
                + "0000000000000000000000000000000000000000000000000000000000000000"
                + "0000000000000000000000000000000000000000000000000000000000000002"
                + "0000000000000000000000000000000000000000000000000000000000000040"
                + "0000000000000000000000000000000000000000000000000000000000000021"
                + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                + "aa00000000000000000000000000000000000000000000000000000000000000")
    }

    @Test func anEmptyDynamicArrayIsItsLengthAlone() {
        let encoded = ABI.encode([.array([]), .tuple([.bool(false), .uint(65535)])])
        #expect(
            hexString(encoded)
                == "0000000000000000000000000000000000000000000000000000000000000060"
                + "0000000000000000000000000000000000000000000000000000000000000000"
                + "000000000000000000000000000000000000000000000000000000000000ffff"
                + "0000000000000000000000000000000000000000000000000000000000000000")
    }

    @Test func dynamicnessFollowsTheContents() {
        #expect(!ABIValue.tuple([.uint(1), .fixedArray([.bool(true)])]).isDynamic)
        #expect(ABIValue.fixedArray([.string("x")]).isDynamic)
        #expect(ABIValue.array([]).isDynamic)
    }

    private func hexBytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map {
            UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    private func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
