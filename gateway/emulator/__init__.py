"""The built-in Bedrock Runtime emulator: the real REST and event-stream wire protocol."""
