import ParleyChannel

// Placeholder: the tic-tac-toe app rules are being written.
