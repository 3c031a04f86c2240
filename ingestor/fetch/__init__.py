"""The fetch stage: schedule feeds, fetch them politely and safely, produce changed bodies to news.raw.

Layers, pure logic apart from I/O:

- ``outcome`` / ``hints`` / ``schedule`` / ``guard`` (its decision): pure, tested without I/O;
- ``http``: one aiohttp session, timeouts, caps, redirects, the connect-time guard;
- ``service``: the ``FetchStage`` that ties the schedule, the fetcher and the producer together.
"""
