/// An optional kept out of line: eight bytes in its owner whatever `Value`'s size, and no
/// allocation while it is nil.
///
/// For the engine's states that are usually absent — our proposal in flight, the peer's
/// proposal being decided, a final state or next state we signed ahead. Inline, each is a
/// whole signed state (or more) in every channel's engine, present or not: about 460 bytes
/// of an idle channel's 1.1 KB loop state (Docs/Performance.md, step 10). Out of line, a
/// channel pays for one only while it holds it, at the cost of an allocation when it is set.
@propertyWrapper
public struct Boxed<Value: Sendable>: Sendable {
    private indirect enum Storage: Sendable {
        case empty
        case value(Value)
    }

    private var storage: Storage

    public init(wrappedValue: Value?) {
        storage = wrappedValue.map(Storage.value) ?? .empty
    }

    public var wrappedValue: Value? {
        get {
            if case let .value(value) = storage { value } else { nil }
        }
        set {
            storage = newValue.map(Storage.value) ?? .empty
        }
    }
}

extension Boxed: Equatable where Value: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.wrappedValue == rhs.wrappedValue }
}

extension Boxed: Hashable where Value: Hashable {
    public func hash(into hasher: inout Hasher) { hasher.combine(wrappedValue) }
}
