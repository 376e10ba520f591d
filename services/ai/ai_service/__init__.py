"""Unpuzzle AI tutor service: grounded chat, learning agents, streaming, usage limits."""
