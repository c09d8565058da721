"""The chat completions route's domain: request validation, non-stream and stream relays."""
