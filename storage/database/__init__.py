"""The shared database: what crosses processes and machines (events and their feed, API keys
and sessions, the operator workflow, webhook outbox, alarm panels, camera leases and the
camera registry, heartbeats, the recordings catalogue and custody log), SQLite or PostgreSQL,
one schema migrated by Alembic. Nothing here touches S3 or media."""
