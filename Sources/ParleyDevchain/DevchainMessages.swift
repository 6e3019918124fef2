import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyWire

// The devchain's network protocol: one encrypted `Session` per client, one message per
// session payload, canonical big-endian encoding. Layouts: Docs/Settlement.md.

/// Named bounds of the devchain protocol, checked before anything is allocated.
public enum DevchainLimits {
    /// Events in one `events` message; backfill is sent in batches of this size.
    public static let maxEventsPerMessage = 256
    /// Events one transaction can cause (a deposit causes at most 2, a final registration 2).
    public static let maxEventsPerTransaction = 16
    /// Subscriptions one client may hold at once.
    public static let maxSubscriptionsPerClient: UInt32 = 64
    /// A live subscriber that falls this many events behind the chain is disconnected
    /// (it reconnects and resubscribes from the last event it handled).
    public static let maxSubscriberLag: UInt64 = 100_000
}

/// What a client asks. The response carries the same `id`.
public struct DevchainRequest: Sendable, Equatable, WireCodable {
    public var id: UInt64
    public var operation: Operation

    public enum Operation: Sendable, Equatable {
        /// Apply a transaction as the session's peer key. Answer: its events.
        case submit(ChainTransaction)
        /// Answer: chain time.
        case now
        /// Answer: the channel's snapshot, or none.
        case channel(ChannelID)
        /// Answer: the account's balance.
        case balance(PublicKey)
        /// Manual-time daemons only. Answer: chain time afterwards.
        case advance(seconds: UInt64)
        /// Answer: `DevchainInfo`.
        case info
        /// Answer: empty; then `events` messages tagged with this request's id.
        case subscribe(after: UInt64)
        /// Ends the subscription opened by request `subscription`. Answer: empty.
        case unsubscribe(subscription: UInt64)
    }

    public init(id: UInt64, operation: Operation) {
        self.id = id
        self.operation = operation
    }

    private enum Tag: UInt8 { case submit = 1, now, channel, balance, advance, info, subscribe, unsubscribe }

    public func encode(to writer: inout WireWriter) {
        writer.write(id)
        switch operation {
        case let .submit(tx): writer.write(Tag.submit.rawValue); tx.encode(to: &writer)
        case .now: writer.write(Tag.now.rawValue)
        case let .channel(id): writer.write(Tag.channel.rawValue); id.encode(to: &writer)
        case let .balance(key): writer.write(Tag.balance.rawValue); key.encode(to: &writer)
        case let .advance(seconds): writer.write(Tag.advance.rawValue); writer.write(seconds)
        case .info: writer.write(Tag.info.rawValue)
        case let .subscribe(after): writer.write(Tag.subscribe.rawValue); writer.write(after)
        case let .unsubscribe(subscription): writer.write(Tag.unsubscribe.rawValue); writer.write(subscription)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        id = try reader.readUInt64("request id")
        let raw = try reader.readUInt8("request operation")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "request operation", tag: raw) }
        switch tag {
        case .submit: operation = .submit(try ChainTransaction(from: &reader))
        case .now: operation = .now
        case .channel: operation = .channel(try ChannelID(from: &reader))
        case .balance: operation = .balance(try PublicKey(from: &reader))
        case .advance: operation = .advance(seconds: try reader.readUInt64("seconds"))
        case .info: operation = .info
        case .subscribe: operation = .subscribe(after: try reader.readUInt64("after sequence"))
        case .unsubscribe: operation = .unsubscribe(subscription: try reader.readUInt64("subscription"))
        }
    }
}

/// What the daemon says about itself (`info`).
public struct DevchainInfo: Sendable, Equatable, WireCodable {
    /// The challenge duration nodes should use when they open a channel without choosing one.
    public var challengeDefault: UInt64
    /// Time moves only on `advance` requests.
    public var manualTime: Bool
    /// The sequence of the newest event; 0 before the first.
    public var lastSequence: UInt64
    /// Chain time now.
    public var time: ChainTime
    /// The chain's settlement domain: every channel on it is bound to this.
    public var domain: SettlementDomain

    public init(
        challengeDefault: UInt64, manualTime: Bool, lastSequence: UInt64, time: ChainTime, domain: SettlementDomain
    ) {
        self.challengeDefault = challengeDefault
        self.manualTime = manualTime
        self.lastSequence = lastSequence
        self.time = time
        self.domain = domain
    }

    public func encode(to writer: inout WireWriter) {
        writer.write(challengeDefault)
        writer.write(manualTime)
        writer.write(lastSequence)
        time.encode(to: &writer)
        domain.encode(to: &writer)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        challengeDefault = try reader.readUInt64("challenge default")
        manualTime = try reader.readBool("manual time")
        lastSequence = try reader.readUInt64("last sequence")
        time = try ChainTime(from: &reader)
        domain = try SettlementDomain(from: &reader)
    }
}

/// The answer to one request: its payload (layout fixed by the request's operation), or why not.
public enum DevchainResult: Sendable, Equatable {
    case ok([UInt8])
    /// The chain's rules refused the transaction; nothing changed.
    case refused(SettlementError)
    /// The daemon refused the request for a reason that is not a chain rule.
    case failed(DevchainRefusal)
}

/// Everything the daemon sends a client.
public enum DevchainServerMessage: Sendable, Equatable, WireCodable {
    case response(id: UInt64, DevchainResult)
    /// Events for the subscription opened by request `subscription`, in chain order.
    case events(subscription: UInt64, [ChainEvent])

    private enum Tag: UInt8 { case response = 1, events }
    private enum ResultTag: UInt8 { case ok = 1, refused, failed }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case let .response(id, result):
            writer.write(Tag.response.rawValue)
            writer.write(id)
            switch result {
            case let .ok(payload): writer.write(ResultTag.ok.rawValue); writer.writeFixed(payload)
            case let .refused(error): writer.write(ResultTag.refused.rawValue); error.encode(to: &writer)
            case let .failed(refusal): writer.write(ResultTag.failed.rawValue); refusal.encode(to: &writer)
            }
        case let .events(subscription, events):
            writer.write(Tag.events.rawValue)
            writer.write(subscription)
            writer.encode(events)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let raw = try reader.readUInt8("devchain message")
        guard let tag = Tag(rawValue: raw) else { throw .unknownTag(field: "devchain message", tag: raw) }
        switch tag {
        case .response:
            let id = try reader.readUInt64("response id")
            let rawResult = try reader.readUInt8("result")
            guard let result = ResultTag(rawValue: rawResult) else { throw .unknownTag(field: "result", tag: rawResult) }
            switch result {
            case .ok: self = .response(id: id, .ok(try reader.readFixed(reader.remaining, "payload")))
            case .refused: self = .response(id: id, .refused(try SettlementError(from: &reader)))
            case .failed: self = .response(id: id, .failed(try DevchainRefusal(from: &reader)))
            }
        case .events:
            let subscription = try reader.readUInt64("subscription")
            self = .events(
                subscription: subscription, try reader.decodeEvents(limit: DevchainLimits.maxEventsPerMessage))
        }
    }
}

extension WireWriter {
    /// u32 count, then the events.
    mutating func encode(_ events: [ChainEvent]) {
        write(UInt32(truncatingIfNeeded: events.count))
        for event in events { event.encode(to: &self) }
    }
}

extension WireReader {
    /// u32 count (checked against `limit` before allocating), then the events.
    mutating func decodeEvents(limit: Int) throws(WireError) -> [ChainEvent] {
        let count = Int(try readUInt32("event count"))
        guard count <= limit else { throw .lengthExceedsLimit(field: "event count", length: count, limit: limit) }
        var events: [ChainEvent] = []
        events.reserveCapacity(count)
        for _ in 0..<count { events.append(try ChainEvent(from: &self)) }
        return events
    }
}

/// Payload layouts of `ok` answers, by operation.
package enum DevchainPayload {
    package static func events(_ events: [ChainEvent]) -> [UInt8] {
        var writer = WireWriter()
        writer.encode(events)
        return writer.bytes
    }

    package static func time(_ time: ChainTime) -> [UInt8] { time.wireBytes }

    package static func balance(_ amount: Amount) -> [UInt8] {
        var writer = WireWriter()
        writer.write(amount)
        return writer.bytes
    }

    package static func channel(_ channel: ChannelOnChain?) -> [UInt8] {
        var writer = WireWriter()
        writer.write(channel != nil)
        channel?.encode(to: &writer)
        return writer.bytes
    }

    package static func decodeEvents(_ bytes: [UInt8]) throws(WireError) -> [ChainEvent] {
        var reader = WireReader(bytes)
        let events = try reader.decodeEvents(limit: DevchainLimits.maxEventsPerTransaction)
        try reader.finish()
        return events
    }

    package static func decodeBalance(_ bytes: [UInt8]) throws(WireError) -> Amount {
        var reader = WireReader(bytes)
        let amount = try reader.readAmount("balance")
        try reader.finish()
        return amount
    }

    package static func decodeChannel(_ bytes: [UInt8]) throws(WireError) -> ChannelOnChain? {
        var reader = WireReader(bytes)
        let channel = try reader.readBool("channel present") ? try ChannelOnChain(from: &reader) : nil
        try reader.finish()
        return channel
    }
}
