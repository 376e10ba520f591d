"""The Unpuzzle API gateway: nginx + njs, rendered from Python settings (see README.md)."""
