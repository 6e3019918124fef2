import Foundation
import PropertyBased
import Testing

@testable import ParleyWire

@Suite struct AmountTests {
    @Test func arithmeticAndOrderMatchUInt128() async {
        await propertyCheck(count: 300, input: Gen.uint64(), Gen.uint64(), Gen.uint64(), Gen.uint64()) { a, b, c, d in
            let x = UInt128(a) << 64 | UInt128(b)
            let y = UInt128(c) << 64 | UInt128(d)
            #expect(Amount(x).value == x)
            #expect((Amount(x) < Amount(y)) == (x < y))
            #expect(Amount(x).addingReportingOverflow(Amount(y)).partialValue.value == x.addingReportingOverflow(y).partialValue)
            #expect(Amount(x).addingReportingOverflow(Amount(y)).overflow == x.addingReportingOverflow(y).overflow)
            #expect(Amount(x).subtractingReportingOverflow(Amount(y)).overflow == (y > x))
            #expect(Amount(x).multipliedReportingOverflow(by: Amount(y)).overflow == x.multipliedReportingOverflow(by: y).overflow)
        }
    }

    @Test func encodesAsSixteenBigEndianBytesAndRoundTrips() throws {
        var writer = WireWriter()
        writer.write(Amount(UInt128(0x0102_0304_0506_0708) << 64 | 0x090a_0b0c_0d0e_0f10))
        #expect(writer.bytes == Array(1...16))
        var reader = WireReader(writer.bytes)
        #expect(try reader.readAmount("amount") == Amount(UInt128(0x0102_0304_0506_0708) << 64 | 0x090a_0b0c_0d0e_0f10))
        var short = WireReader(Array(writer.bytes.prefix(15)))
        #expect(throws: WireError.self) { try short.readAmount("amount") }
    }

    @Test func textIsDecimalAndRefusesWhatIsNotAnAmount() {
        #expect(Amount("340282366920938463463374607431768211455") == .max)
        #expect(Amount.max.description == "340282366920938463463374607431768211455")
        #expect(Amount("340282366920938463463374607431768211456") == nil)
        #expect(Amount("-1") == nil)
        #expect(Amount("1e9") == nil)
        #expect(Amount(" 5") == nil)
        #expect(Amount(UInt64.max).uint64 == UInt64.max)
        #expect((Amount(UInt64.max) + 1).uint64 == nil)
    }

    @Test func jsonIsAPlainNumberEvenAbove64Bits() throws {
        let encoded = try JSONEncoderShim.encode(["balance": Amount.max])
        #expect(encoded == #"{"balance":340282366920938463463374607431768211455}"#)
        #expect(try JSONEncoderShim.decode(encoded) == ["balance": Amount.max])
    }

    /// The call shape that crashed Swift 6.3 debug builds when amounts were `UInt128`: an
    /// async requirement, reached through an existential, taking a string, a struct of two
    /// amounts, a byte and an amount, suspending, and returning amounts.
    @Test func asyncCallsWithAmountsKeepTheirArguments() async throws {
        let adapter: any AmountSink = Sink()
        var total = Amount.zero
        for index in 0..<2_000 {
            let returned = try await adapter.deposit(
                params: "p\(index)", opening: Pair(first: 5, second: 7), participant: 1, amount: Amount(index))
            #expect(returned == [Amount(index), 5, 7, 1])
            total = total + returned[0]
        }
        #expect(total == Amount(1_999 * 2_000 / 2))
    }
}

private struct Pair: Sendable {
    var first: Amount
    var second: Amount
}

private protocol AmountSink: Sendable {
    func deposit(params: String, opening: Pair, participant: UInt8, amount: Amount) async throws(WireError) -> [Amount]
}

private actor Tally {
    var total = Amount.zero
    func add(_ amount: Amount) -> Amount {
        total = total + amount
        return total
    }
}

private struct Sink: AmountSink {
    let tally = Tally()

    func deposit(params: String, opening: Pair, participant: UInt8, amount: Amount) async throws(WireError) -> [Amount] {
        _ = await tally.add(amount)
        await Task.yield()
        if params.isEmpty { throw .invalidValue(field: "params", reason: "empty") }
        return [amount, opening.first, opening.second, Amount(UInt64(participant))]
    }
}

/// Foundation's coder, kept out of the tests' bodies.
private enum JSONEncoderShim {
    static func encode(_ value: [String: Amount]) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static func decode(_ text: String) throws -> [String: Amount] {
        try JSONDecoder().decode([String: Amount].self, from: Data(text.utf8))
    }
}
