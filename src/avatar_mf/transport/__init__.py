"""asyncio edges of the SIP stack: UDP, TCP, TLS and WebSocket (ws, wss) listeners, their
connection limits and handshake policy. Everything above is sans-IO."""
