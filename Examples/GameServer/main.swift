// game-server: many tic-tac-toe matches at once, each its own state channel with stakes,
// and a load generator that plays them. See `game-server --help`.
await GameServerCommand.start()
