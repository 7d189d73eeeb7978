"""avatar_mf: a Media Function for avatar calls over IMS data channels."""

__version__ = "0.1.0"
