import ParleyChannel

/// The app rules Parley ships: what `parley devchain` and the game server register with a
/// chain, so that `progress` and a game's payout follow them.
public enum GameRules {
    /// `CounterApp` and `TicTacToe` (payments need no entry: every chain knows them).
    public static let all: [any AppRules] = [CounterApp(), TicTacToe()]
}
