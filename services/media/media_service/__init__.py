"""Unpuzzle media service: resumable uploads, processing and signed delivery of media files."""
