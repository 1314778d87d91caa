"""Ingest: pull camera streams, keep their encoded packets, hand sampled frames on."""
