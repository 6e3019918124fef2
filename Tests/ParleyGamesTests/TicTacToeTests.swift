import ParleyGames
import Testing
