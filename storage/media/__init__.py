"""The evidence path to S3: clips and snapshots cut from the packet ring, spooled to disk,
uploaded and verified, 24/7 recording segments, retention, integrity checks and legal holds.
It writes what it stores into the shared database (storage.database)."""
