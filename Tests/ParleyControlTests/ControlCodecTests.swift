import Foundation
import PropertyBased
import Testing

@testable import ParleyControl
@testable import ParleyWire

/// The control protocol's lines: every word form a person types, the JSON form scripts
/// send, and what a hostile or careless sender gets back.
@Suite struct ControlCodecTests {
    @Test func everyCommandsWordFormParses() throws {
        let cases: [(String, ControlRequest)] = [
            ("open pk1abc@127.0.0.1:7001 100 50", ControlRequest(.open, peer: "pk1abc@127.0.0.1:7001", mine: 100, theirs: 50)),
            ("OPEN pk1abc@h:1 0 5 tictactoe 0x00000000000000000000000000000000000000aa",
             ControlRequest(.open, peer: "pk1abc@h:1", mine: 0, theirs: 5, app: "tictactoe",
                            peerSigner: "0x00000000000000000000000000000000000000aa")),
            ("pay 3f9a12cd 20", ControlRequest(.pay, channel: "3f9a12cd", amount: 20)),
            ("pay 3f9a12cd 20 5", ControlRequest(.pay, channel: "3f9a12cd", amount: 20, count: 5)),
            ("move 3f9a12cd 4", ControlRequest(.move, channel: "3f9a12cd", cell: 4)),
            ("close 3f9a12cd", ControlRequest(.close, channel: "3f9a12cd")),
            ("dispute 3f9a12cd", ControlRequest(.dispute, channel: "3f9a12cd")),
            ("register 3f9a12cd latest", ControlRequest(.register, channel: "3f9a12cd", state: "latest")),
            ("tamper 3f9a12cd overspend", ControlRequest(.tamper, channel: "3f9a12cd", kind: "overspend")),
            ("hold-finals on", ControlRequest(.holdFinals, on: true)),
            ("  status  ", ControlRequest(.status)),
            ("balance", ControlRequest(.balance)),
            ("help", ControlRequest(.help)),
        ]
        for (line, expected) in cases {
            var parsed = try #require(try ControlCodec.request(line))
            parsed.v = expected.v
            #expect(parsed == expected, "\(line)")
        }
        #expect(try ControlCodec.request("   ") == nil)
    }

    @Test func badWordFormsSayWhatIsWrongAndNameTheArgument() {
        let cases: [(String, String)] = [
            ("pya 3f9a12cd 1", "did you mean 'pay'"),
            ("stauts", "did you mean 'status'"),
            ("frobnicate", "unknown command 'frobnicate'"),
            ("pay 3f9a12cd", "usage: pay CHANNEL AMOUNT [COUNT]"),
            ("pay 3f9a12cd 0", "AMOUNT must be a positive"),
            ("pay 3f9a12cd -3", "AMOUNT must be a whole number"),
            ("pay 3f9a12cd 340282366920938463463374607431768211456", "AMOUNT is too large"),
            ("pay 3f9a12cd 1 0", "COUNT must be a positive"),
            ("open pk@h:1 1 99999999999999999999999999999999999999999", "THEIRS is too large"),
            ("open pk@h:1 1", "usage: open"),
            ("hold-finals maybe", "on or off"),
            ("status now", "expected 0 arguments"),
        ]
        for (line, fragment) in cases {
            #expect(throws: ControlUsageError.self, "\(line)") { try ControlCodec.request(line) }
            do {
                _ = try ControlCodec.request(line)
            } catch {
                #expect(error.description.contains(fragment), "\(line) → \(error)")
            }
        }
    }

    @Test func jsonRequestsAreReadAndNewerVersionsAreRefusedByName() throws {
        let request = try #require(try ControlCodec.request(#"{"v":1,"id":"7","command":"pay","channel":"3f9a12cd","amount":340282366920938463463374607431768211455}"#))
        #expect(request.id == "7" && request.command == .pay && request.amount == Amount.max)
        #expect(throws: ControlUsageError.self) { try ControlCodec.request(#"{"v":2,"command":"status"}"#) }
        #expect(throws: ControlUsageError.self) { try ControlCodec.request(#"{"command":"launch-missiles"}"#) }
        #expect(throws: ControlUsageError.self) { try ControlCodec.request(#"{"command":"pay","amount":-1}"#) }
        #expect(throws: ControlUsageError.self) { try ControlCodec.request("{not json") }
    }

    /// What a request encodes to, it decodes back from; amounts keep every bit (JSON
    /// numbers above 2^53, which double-based readers would round).
    @Test func requestsRoundTripThroughTheirJSONLine() async throws {
        let verbs = ControlVerb.allCases
        await propertyCheck(
            count: 300, input: Gen.int(in: 0...(verbs.count - 1)), Gen.uint64(), Gen.uint64(), Gen.uint64(), Gen.int(in: 0...8)
        ) { index, high, low, count, cell in
            let verb = verbs[index]
            let amount = Amount(UInt128(high) << 64 | UInt128(low))
            let request = ControlRequest(
                verb, id: "id-\(low)", channel: "3f9a12cd", peer: "pk1x@127.0.0.1:1", mine: amount, theirs: Amount(low),
                amount: amount, count: count, cell: cell, state: "latest", kind: "replay", on: high % 2 == 0)
            let line = try ControlCodec.line(request)
            #expect(!line.contains("\n"))
            #expect(try ControlCodec.request(line) == request)
        }
    }

    @Test func answersAndEventsAreToldApartAndRoundTrip() throws {
        var response = ControlResponse(command: "pay", id: "3", ok: true)
        response.balances = ControlBalances(me: 80, peer: Amount.max)
        response.paid = 2
        guard case let .response(back) = try ControlCodec.decodeLine(try ControlCodec.line(response)) else {
            Issue.record("an answer read as an event")
            return
        }
        #expect(back == response)
        var event = ControlEvent(.registered, channel: "3f9a12cd")
        event.deadline = 90
        event.secondsLeft = 9
        guard case let .event(read) = try ControlCodec.decodeLine(try ControlCodec.line(event)) else {
            Issue.record("an event read as an answer")
            return
        }
        #expect(read == event)
        #expect(ControlText.render(event).contains("in 9 s"))
        #expect(throws: ControlUsageError.self) { try ControlCodec.decodeLine(#"{"v":1}"#) }
    }

    @Test func theHumanFormCutsIdsAndGivesHints() {
        var failure = ControlResponse.failure("close", id: "4", error: "no answer", hint: "dispute CHANNEL")
        failure.channel = String(repeating: "ab", count: 32)
        #expect(ControlText.render(failure) == "[4] close: error: no answer\n  hint: dispute CHANNEL")
        var status = ControlResponse(command: "status", id: nil, ok: true)
        status.key = "pk1" + String(repeating: "q", count: 50)
        status.channels = [
            ControlChannel(
                channel: String(repeating: "cd", count: 32), peer: "pk1zz", seat: 0, version: 3,
                balances: ControlBalances(me: 1, peer: 2), status: .open, phase: "idle", funded: true, closing: false,
                closingReason: nil, closed: false, connected: false)
        ]
        let text = ControlText.render(status)
        #expect(text.contains("cdcdcdcd  open"), "\(text)")
        #expect(!text.contains(String(repeating: "cd", count: 5)), "ids are cut to 8 digits: \(text)")
        #expect(text.contains("(offline)"))
        #expect(ControlText.duration(250) == "4 min 10 s")
        #expect(ControlText.duration(7500) == "2 h 5 min")
    }
}
