"""The sandbox: a hosted strategy as its own process with one way out (framework-free)."""
