"""Local fakes of the brokers, driven by their real SDKs (docs: ../shared/docs/reference/broker-sdks-offline.md)."""
