"""bedrock-gateway: an OpenAI-compatible HTTP gateway in front of Amazon Bedrock."""

__version__ = "0.1.0"
