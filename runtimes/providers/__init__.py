"""Providers: the runtimes behind the Trading API, one shape (runtimes/core/provider.py).

backtest (the engine over a dataset) and mock (a simulated market in real time); the broker
providers join here. Framework-free like the core: the host builds them from the session row."""
