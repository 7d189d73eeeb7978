"""The composition root of one MF node: wiring, metrics, the admin HTTP server."""
