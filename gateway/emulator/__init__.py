"""The built-in Bedrock Runtime emulator: the real REST and event-stream wire protocol."""

from gateway.emulator.app import BedrockEmulator, create_emulator_app
from gateway.emulator.errors import ServiceError
from gateway.emulator.plan import Script
from gateway.emulator.script import ScriptError, parse_script

__all__ = [
    "BedrockEmulator",
    "Script",
    "ScriptError",
    "ServiceError",
    "create_emulator_app",
    "parse_script",
]
