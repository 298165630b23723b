"""Session hosting: the host that runs a session, its commands, the bus, leases and dispatch."""
