"""The HTTP API: events, media and camera status, read from the index and S3."""
