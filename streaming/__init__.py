"""The streaming stage's Kafka side: the event codec, the emitter and the embedded broker.

``streaming.codec`` is pure; ``streaming.emitter`` and ``streaming.broker`` import
kafka-python only when they connect, so importing this package stays cheap.
"""
