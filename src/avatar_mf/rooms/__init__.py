"""Rooms of participants and the bounded relay queues between them."""
