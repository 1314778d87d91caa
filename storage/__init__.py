"""Storage, in two wings: `database/`, the shared database every process uses (the event
index, accounts, workflow, webhooks, alarm panels, camera leases and registry, heartbeats),
and `media/`, the evidence path to S3 (spool, uploader, clips, 24/7 recording, retention,
integrity). The media wing uses the database wing, never the reverse."""
