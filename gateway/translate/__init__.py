"""Pure translation between the OpenAI wire format and Bedrock Converse: no I/O, no clock."""
