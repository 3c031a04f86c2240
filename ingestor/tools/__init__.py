"""The command-line tools: `ingestor run` (the daemon), parse, tail, status, dlq, replay, feeds, demo.

The top layer: tools import stages and the runtime core, nothing imports tools.
"""
