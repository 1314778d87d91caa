"""Small types shared by every stage of the pipeline (frames, detections, events)."""
