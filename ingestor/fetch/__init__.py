"""The fetch stage: schedule feeds, fetch them politely and safely, produce changed bodies to news.raw.

Pure logic apart from I/O (docs/architecture.md, "Fetch"):

- pure, tested without I/O: ``decision`` (what an attempt means for its feed), ``dispatcher``
  (the global and per-host caps), ``schedule``, ``outcome``, ``hints``, ``guard`` (its
  decision), ``state`` (the fetch-state record), ``feedstate``, ``shard``, ``websub_protocol``,
  ``opml``;
- the shell: ``service`` (``FetchStage``, the schedule loop), ``recorder``, ``keeper`` and
  ``store`` (the fetch-state topic), ``raw`` (the news.raw writer), ``push`` and ``websub``
  (WebSub), ``status``, ``http`` (one aiohttp session, timeouts, caps, redirects, the
  connect-time guard), ``registry`` (the consumer-group member on news.feeds) and ``feeds``
  (the feeds-topic record format).
"""
