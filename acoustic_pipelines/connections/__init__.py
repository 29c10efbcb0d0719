"""Segment Connections (reverse ETL): warehouse models → Spec calls → Segment's Tracking API."""
