"""Local fakes of the brokers, driven by their real SDKs.

How each SDK is pointed at one: ../shared/docs/reference/broker-sdks-offline.md.
"""
