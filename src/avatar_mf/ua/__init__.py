"""The SIP user agent (UAS core): dialogs, re-offers, session timers; the seam to media."""
