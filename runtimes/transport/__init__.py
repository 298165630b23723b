"""The Trading API transport: REST views, the WebSocket consumer, credentials and access."""
