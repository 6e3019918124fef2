import Metrics
import ParleyLocks

/// Counters of one name whose label values are known only when something happens (a
/// refusal's kind): each label set's counter is made on first use and kept. For rare
/// events; the values must come from a fixed, small set (case names), never from data.
public final class LabeledCounters: Sendable {
    private let label: String
    private let names: [String]
    private let counters = Locked<[[String]: Counter]>([:])
    /// The factory bound when this was made, for the counters made later.
    private let factory = MetricsSystem.factory

    /// Counters named `label`, with the label names `names`.
    public init(label: String, names: [String]) {
        self.label = label
        self.names = names
    }

    /// Adds one to the counter of these label values (one per name, in order).
    public func increment(_ values: String...) {
        let counter = counters.withLock { counters in
            if let counter = counters[values] { return counter }
            let counter = Counter(label: label, dimensions: Array(zip(names, values)), factory: factory)
            counters[values] = counter
            return counter
        }
        counter.increment()
    }
}
