"""asyncio edges of the SIP stack: UDP and TCP listeners. Everything above is sans-IO."""
