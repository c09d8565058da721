"""Talking to upstream models: the SSE parser, the forwarding client, error scrubbing."""
