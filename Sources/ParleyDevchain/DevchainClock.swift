import ParleySettlement

/// How the devchain's clock moves.
public enum DevchainTimeMode: Sendable, Equatable {
    /// Time moves only on `advance` requests (tests, drills).
    case manual
    /// One block every `blockMilliseconds`; chain time is the whole seconds of elapsed block time.
    case blocks(milliseconds: UInt64)

    /// The default block time.
    public static let defaultBlockMilliseconds: UInt64 = 1000
}

/// Chain time as a value: where the clock started on this run, and how it moves.
///
/// Block time counts from the persisted time at startup, so chain time never goes
/// backwards across restarts (time the daemon was down does not count).
struct DevchainClock {
    let mode: DevchainTimeMode
    private var base: ChainTime
    private var started: ContinuousClock.Instant

    init(mode: DevchainTimeMode, start: ChainTime, at instant: ContinuousClock.Instant = .now) {
        self.mode = mode
        base = start
        started = instant
    }

    func now(at instant: ContinuousClock.Instant = .now) -> ChainTime {
        switch mode {
        case .manual:
            return base
        case let .blocks(ms):
            let elapsed = started.duration(to: instant)
            let elapsedMs = UInt64(max(0, elapsed.components.seconds)) * 1000
                + UInt64(max(0, elapsed.components.attoseconds)) / 1_000_000_000_000_000
            let blocks = elapsedMs / max(ms, 1)
            return base + blocks.multipliedReportingOverflow(by: ms).partialValue / 1000
        }
    }

    /// Manual mode only: moves the clock `seconds` later (saturating).
    mutating func advance(by seconds: UInt64) -> ChainTime {
        base = base + seconds
        return base
    }
}
