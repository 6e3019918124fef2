import ParleyWire

/// A point in chain time, in whole seconds since the chain's genesis.
///
/// Challenge windows are measured in chain time, never wall-clock time: the
/// embedded `LocalChain` starts at 0 and moves only when told to, a real
/// chain moves with its blocks.
public struct ChainTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Whole seconds since genesis.
    public var seconds: UInt64

    /// The time `seconds` after genesis.
    public init(seconds: UInt64) {
        self.seconds = seconds
    }

    /// Genesis: where `LocalChain`'s clock starts.
    public static let zero = ChainTime(seconds: 0)

    /// `time` moved `duration` seconds later, saturating at the last representable second
    /// (a deadline that far away never passes, which is the safe direction).
    public static func + (time: ChainTime, duration: UInt64) -> ChainTime {
        let (sum, overflow) = time.seconds.addingReportingOverflow(duration)
        return ChainTime(seconds: overflow ? .max : sum)
    }

    public static func < (lhs: ChainTime, rhs: ChainTime) -> Bool {
        lhs.seconds < rhs.seconds
    }

    public var description: String { "t=\(seconds)s" }
}

extension ChainTime: WireCodable {
    public func encode(to writer: inout WireWriter) {
        writer.write(seconds)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        seconds = try reader.readUInt64("chain time")
    }
}

/// Where a channel is in its on-chain life.
///
/// `open → disputed → concluded → withdrawn`; a final fully-signed state
/// goes from `open` (or `disputed`) to `concluded` in one transaction.
public enum ChainPhase: String, Sendable, Hashable, CaseIterable {
    /// Nothing registered: the channel is being funded, is funded, or its deposits were reclaimed.
    case open
    /// A state is registered. Stays `disputed` after the window closes until someone concludes:
    /// the chain has no clock of its own to act on, so only a `conclude` moves it on.
    case disputed
    /// The payout is fixed; participants may withdraw.
    case concluded
    /// Every participant with a nonzero payout has withdrawn it.
    case withdrawn
}
