"""Parameter sweeps: one strategy version backtested at many points of a parameter space, each
point a hosted backtest of its own, fanned out over the workers (docs/sweeps.md)."""
