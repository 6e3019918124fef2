// Placeholder: the game server example is being written.
print("game-server")
