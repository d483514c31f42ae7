"""alura-bot: a trading daemon, simulator and backtester for the Alura Trading backend."""

__version__ = "0.1.0"
