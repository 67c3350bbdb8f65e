"""Volunteers: registry and certificates, tokens, duty, live positions and phone channels."""
