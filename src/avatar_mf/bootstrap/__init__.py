"""The bootstrap data channel (HTTP over a data channel, TS 26.114 6.2.10)."""
