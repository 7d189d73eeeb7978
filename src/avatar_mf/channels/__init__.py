"""The contract between a call's data channels and the services that run on them."""
