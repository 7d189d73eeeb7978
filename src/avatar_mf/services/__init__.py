"""Data channel services: what the MF does with the messages of one channel, by subprotocol."""
