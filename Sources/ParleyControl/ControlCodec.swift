import Foundation
import ParleyWire

/// Lines of the control protocol to and from bytes.
public enum ControlCodec {
    /// The longest line a reader accepts (a `status` of thousands of channels fits).
    public static let maxLineBytes = 4 << 20

    /// One line, keys sorted, no newline.
    public static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A line a node wrote: an answer (it has `ok`) or an event (it has `event`).
    public static func decodeLine(_ text: String) throws -> ControlLine {
        let data = Data(text.utf8)
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: data) } catch {
            throw ControlUsageError("not a control protocol line: \(text.prefix(120))")
        }
        if probe.event != nil { return .event(try JSONDecoder().decode(ControlEvent.self, from: data)) }
        guard probe.ok != nil else { throw ControlUsageError("a line with neither `ok` nor `event`: \(text.prefix(120))") }
        return .response(try JSONDecoder().decode(ControlResponse.self, from: data))
    }

    private struct Probe: Decodable {
        var ok: Bool?
        var event: String?
    }

    /// A request line: a JSON object, or the word form a person types (`pay 3f9a12cd 20`).
    /// Word lines get no `id`. Blank lines are nil.
    public static func request(_ text: String) throws(ControlUsageError) -> ControlRequest? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return nil }
        if trimmed.hasPrefix("{") {
            let request: ControlRequest
            do { request = try JSONDecoder().decode(ControlRequest.self, from: Data(trimmed.utf8)) } catch {
                throw ControlUsageError("not a request: \(describe(error)) (see `help` for the commands)")
            }
            if let version = request.v, version > ControlProtocol.version {
                throw ControlUsageError(
                    "the request speaks control protocol version \(version); this node speaks \(ControlProtocol.version)")
            }
            return request
        }
        return try words(trimmed.split(whereSeparator: \.isWhitespace).map(String.init))
    }

    /// The word form: a verb and its arguments, as `ControlVerb.usage` shows them.
    public static func words(_ words: [String]) throws(ControlUsageError) -> ControlRequest? {
        guard let first = words.first else { return nil }
        let arguments = Array(words.dropFirst())
        guard let verb = ControlVerb(rawValue: first.lowercased()) else {
            throw ControlUsageError(unknownCommand(first))
        }
        func expect(_ count: Int) throws(ControlUsageError) {
            guard arguments.count == count else {
                throw ControlUsageError(
                    "expected \(count) argument\(count == 1 ? "" : "s"), got \(arguments.count) (usage: \(verb.usage))")
            }
        }
        var request = ControlRequest(verb)
        request.v = nil
        switch verb {
        case .open:
            var rest = arguments
            if let last = rest.last, last.hasPrefix("0x"), rest.count > 3 {
                request.peerSigner = last
                rest.removeLast()
            }
            guard rest.count == 3 || (rest.count == 4 && rest[3].lowercased() == "tictactoe") else {
                throw ControlUsageError(
                    "expected 3 arguments, or 4 with `tictactoe`, then the peer's 0x… address on Ethereum (usage: \(verb.usage))")
            }
            request.peer = rest[0]
            request.mine = try amount(rest[1], flag: "MINE", allowZero: true, usage: verb.usage)
            request.theirs = try amount(rest[2], flag: "THEIRS", allowZero: true, usage: verb.usage)
            if rest.count == 4 { request.app = "tictactoe" }
        case .pay:
            guard arguments.count == 2 || arguments.count == 3 else {
                throw ControlUsageError("expected 2 or 3 arguments, got \(arguments.count) (usage: \(verb.usage))")
            }
            request.channel = arguments[0]
            request.amount = try amount(arguments[1], flag: "AMOUNT", allowZero: false, usage: verb.usage)
            if arguments.count == 3 {
                guard let count = UInt64(arguments[2]), count > 0 else {
                    throw ControlUsageError("COUNT must be a positive whole number, got '\(arguments[2])' (usage: \(verb.usage))")
                }
                request.count = count
            }
        case .move:
            try expect(2)
            request.channel = arguments[0]
            guard let cell = Int(arguments[1]) else {
                throw ControlUsageError("CELL must be 0...8, got '\(arguments[1])' (usage: \(verb.usage))")
            }
            request.cell = cell
        case .close, .dispute, .state, .held, .progressFinal:
            try expect(1)
            request.channel = arguments[0]
        case .register, .cheat:
            try expect(2)
            request.channel = arguments[0]
            request.state = arguments[1]
        case .tamper:
            try expect(2)
            request.channel = arguments[0]
            request.kind = arguments[1]
        case .holdFinals:
            try expect(1)
            guard ["on", "off"].contains(arguments[0].lowercased()) else {
                throw ControlUsageError("expected on or off (usage: \(verb.usage))")
            }
            request.on = arguments[0].lowercased() == "on"
        case .status, .balance, .silence, .wake, .disconnect, .reconnect, .subscribe, .help, .quit:
            try expect(0)
        }
        return request
    }

    /// An amount argument: a whole number of units below 2^128, positive where zero means nothing.
    static func amount(_ text: String, flag: String, allowZero: Bool, usage: String) throws(ControlUsageError) -> Amount {
        guard let value = Amount(text) else {
            let digits = !text.isEmpty && text.allSatisfy(\.isNumber)
            throw ControlUsageError(
                digits
                    ? "\(flag) is too large: at most 2^128 - 1, got \(text.count) digits (usage: \(usage))"
                    : "\(flag) must be a whole number of units, got '\(text)' (usage: \(usage))")
        }
        guard allowZero || value > 0 else {
            throw ControlUsageError("\(flag) must be a positive whole number, got 0 (usage: \(usage))")
        }
        return value
    }

    /// "unknown command 'pya'; did you mean 'pay'? …"
    public static func unknownCommand(_ word: String) -> String {
        let names = ControlVerb.allCases.map(\.rawValue)
        let guess = closest(to: word.lowercased(), among: names)
        return "unknown command '\(word)'" + (guess.map { "; did you mean '\($0)'?" } ?? "")
            + " (`help` lists the commands)"
    }

    /// The candidate within two edits of `word`, if one is closest.
    public static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= 2 }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): "missing \"\(key.stringValue)\""
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            "bad \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        case let DecodingError.dataCorrupted(context):
            context.codingPath.isEmpty ? "not JSON" : "bad \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        default: "\(error)"
        }
    }
}
