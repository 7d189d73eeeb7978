"""Call media: SDP offer/answer to data channels, and channels to their services."""
