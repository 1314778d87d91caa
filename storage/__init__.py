"""Storage: the event index (SQLAlchemy) and clips and snapshots in S3 (minio SDK)."""
