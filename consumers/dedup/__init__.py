"""Dedup stage: publish an item only when its id is new or its content changed."""
