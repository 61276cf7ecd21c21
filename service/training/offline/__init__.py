"""Offline retrieval: the point-in-time join engine and the resolution of Feast definitions it needs."""
