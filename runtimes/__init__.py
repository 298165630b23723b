"""Trading runtimes: the Django shell around runtimes/core."""
