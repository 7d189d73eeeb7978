"""The avatar pipeline: typed frames routed through the stages a session negotiated."""
