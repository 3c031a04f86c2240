"""The consuming stages: parse (news.raw -> news.items) and dedup (news.items -> news.published)."""
