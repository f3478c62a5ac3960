"""Stage 5, serving: the HTTP API, the batch ``recommend`` and the demo."""
