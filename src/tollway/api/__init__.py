"""The HTTP layer: thin handlers that authenticate, decode, call a service and render."""
