"""The demo newsroom: a fictional publisher whose feeds and live pages `ingestor demo` follows.

Out of the core path: only the demo command and tests import it.
"""
