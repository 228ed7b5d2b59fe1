"""The HTTP/1.1 transport under aiobotocore: see `gateway.transport.session`."""

from gateway.transport.session import BedrockHTTPSession

__all__ = ["BedrockHTTPSession"]
