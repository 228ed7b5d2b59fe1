"""The Anthropic Messages API pair: Messages <-> Bedrock.

* `invoke` -- a Messages body -> the native Claude body of InvokeModel, and the answer
  back (Claude models: every block type passes through exactly as sent);
* `invoke_stream` -- InvokeModelWithResponseStream's `chunk` events -> Anthropic SSE bytes;
* `betas` -- which `anthropic-beta` values may reach Bedrock;
* `count_tokens` -- the CountTokens input for a Messages body;
* `errors` -- a `GatewayError` in Anthropic's error shape.

Pure: no I/O, clock, ids or logging; ids and names come in as arguments.
"""
