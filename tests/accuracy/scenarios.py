"""The composed live pages.  Times are local wall-clock readings in the scenario's zone;
``fold=1`` marks the second pass through an autumn repeated hour.  The comments give the
reasoning for each clock-only list (why the newest-first rule lands on that instant).

DST changes used: Kyiv 2024-10-27 04:00→03:00 and 2025-03-30 03:00→04:00; London
2024-10-27 02:00→01:00 and 2025-03-30 / 2024-03-31 01:00→02:00; New York 2024-11-03
02:00→01:00 and 2025-03-09 02:00→03:00.
"""

from __future__ import annotations

from make_pages import Post, Scenario

EDIT = "Officials later revised the figure."

SCENARIOS: list[Scenario] = [
    # --- text captures -------------------------------------------------------------------
    # Capture date 2024-11-04: the reference is 23:59:59.999Z = 01:59 on Nov 5 in Kyiv, so
    # "1:10 AM" and "12:20 AM" are Nov 5, "11:45 PM" drops back to Nov 4 (midnight crossing).
    Scenario(
        "text-en-kyiv-midnight", "text", "en", "Europe/Kyiv", "2024-11-06T08:00:00Z",
        capture_date="2024-11-04", title=1, article_paras=[1, 6, 7], published="2024-11-04 08:36",
        posts=[
            Post("2024-11-05 01:10", 0, [0]),
            Post("2024-11-05 00:20", 2, [2], updated="2024-11-05 01:05"),
            Post("2024-11-04 23:45", 3, [3]),
            Post("2024-11-04 21:05", None, [4]),
            Post("2024-11-04 09:30", 5, [5]),
        ],
    ),
    Scenario(
        "text-en-pair-a", "text", "en", "Europe/Kyiv", "2024-11-06T10:00:00Z",
        title=9, article_paras=[13, 14], published="2024-11-06 07:50",
        posts=[
            Post("2024-11-06 11:40", 6, [8, 9]),
            Post("2024-11-06 10:15", 7, [10]),
            Post("2024-11-06 08:05", None, [11]),
        ],
    ),
    Scenario(
        "text-en-pair-b", "text", "en", "Europe/Kyiv", "2024-11-06T10:30:00Z",
        title=9, article_paras=[13, 14], published="2024-11-06 07:50",
        posts=[
            Post("2024-11-06 11:55", 8, [12]),
            Post("2024-11-06 11:40", 6, [8, 9]),
            Post("2024-11-06 10:15", 7, [10], edit=EDIT),
            Post("2024-11-06 08:05", None, [11]),
        ],
    ),
    # Kyiv autumn: 03:00-03:59 happens twice on 2024-10-27.  Below 04:20 (02:20Z) the
    # latest 03:40 is the second one (01:40Z); 03:10 likewise (01:10Z); 03:50 cannot be the
    # second one (01:50Z is after 01:10Z) so it is the first (00:50Z); 03:05 first (00:05Z).
    Scenario(
        "text-uk-kyiv-autumn", "text", "uk", "Europe/Kyiv", "2024-10-28T09:00:00Z", clock="24h",
        capture_date="2024-10-27", title=8, article_paras=[10, 11], published="2024-10-27 09:00",
        posts=[
            Post("2024-10-28 01:30", 0, [0, 1]),
            Post("2024-10-27 22:10", 1, [3]),
            Post("2024-10-27 04:20", 2, [2], updated="2024-10-27 04:45"),
            Post("2024-10-27 03:40", 3, [4], fold=1),
            Post("2024-10-27 03:10", 4, [5], fold=1),
            Post("2024-10-27 03:50", 5, [6], fold=0),
            Post("2024-10-27 03:05", None, [8], fold=0),
            Post("2024-10-27 02:30", 7, [9]),
        ],
    ),
    # Kyiv spring: 03:00-03:59 is skipped on 2025-03-30; 04:10 EEST is 01:10Z, 02:50 EET 00:50Z.
    Scenario(
        "text-uk-kyiv-spring", "text", "uk", "Europe/Kyiv", "2025-03-30T08:00:00Z", clock="24h",
        title=6, article_paras=[7, 0], published="2025-03-30 09:15",
        posts=[
            Post("2025-03-30 10:40", 9, [12], updated="2025-03-30 10:55"),
            Post("2025-03-30 04:10", 10, [13, 1]),
            Post("2025-03-30 02:50", 11, [3]),
            Post("2025-03-29 23:15", None, [5]),
        ],
    ),
    Scenario(
        "text-ru-moscow", "text", "ru", "Europe/Moscow", "2024-11-04T12:00:00Z", clock="24h",
        title=2, article_paras=[3, 7], published="2024-11-04 09:20", authors=1,
        posts=[
            Post("2024-11-04 14:50", 1, [2], updated="2024-11-04 14:58"),
            Post("2024-11-04 13:55", 0, [0, 1]),
            Post("2024-11-04 00:30", 3, [4]),
            Post("2024-11-03 23:40", 4, [5]),
            Post("2024-11-03 20:00", None, [6]),
        ],
    ),
    # New York autumn: 1:00-1:59 AM happens twice on 2024-11-03.  Reference: end of the
    # capture date (23:59Z = 6:59 PM EST).  Below 2:10 AM EST (07:10Z): 1:40 -> second
    # (06:40Z); 1:05 -> second (06:05Z); 1:55 -> first (05:55Z, the second is 06:55Z >
    # 06:05Z); 1:20 -> first (05:20Z).  The "Updated 1:25 AM" of the 1:05 post is the
    # earliest 1:25 not before 06:05Z, the second one (06:25Z).
    Scenario(
        "text-en-ny-autumn", "text", "en", "America/New_York", "2024-11-04T12:00:00Z",
        capture_date="2024-11-03", title=16, article_paras=[18, 19, 20], published="2024-11-03 07:00",
        authors=1,
        posts=[
            Post("2024-11-03 18:15", 10, [10, 11]),
            Post("2024-11-03 02:10", 11, [12]),
            Post("2024-11-03 01:40", 12, [13], fold=1),
            Post("2024-11-03 01:05", 13, [14], fold=1, updated="2024-11-03 01:25", updated_fold=1),
            Post("2024-11-03 01:55", 14, [15], fold=0),
            Post("2024-11-03 01:20", None, [16], fold=0),
            Post("2024-11-02 23:30", 15, [17]),
        ],
    ),
    # London spring 2025-03-30: 2:20 AM BST is 01:20Z, 12:40 AM GMT 00:40Z.
    Scenario(
        "text-en-london-spring", "text", "en", "Europe/London", "2025-03-30T12:00:00Z",
        title=20, article_paras=[26, 27], published="2025-03-30 08:00", authors=2,
        posts=[
            Post("2025-03-30 12:45", 17, [21]),
            Post("2025-03-30 02:20", 18, [22, 23]),
            Post("2025-03-30 00:40", 19, [24]),
            Post("2025-03-29 23:55", None, [25]),
        ],
    ),
    Scenario(
        "text-de-berlin", "text", "de", "Europe/Berlin", "2025-03-03T15:00:00Z", clock="24h",
        title=3, article_paras=[5, 6], published="2025-03-03 08:30",
        posts=[
            Post("2025-03-03 15:30", 1, [1], updated="2025-03-03 15:45"),
            Post("2025-03-03 12:05", 2, [2, 3]),
            Post("2025-03-03 09:10", None, [4]),
        ],
    ),
    Scenario(
        "text-es-madrid", "text", "es", "Europe/Madrid", "2024-11-05T19:00:00Z", clock="24h",
        title=1, article_paras=[1, 2], published="2024-11-05 18:30",
        posts=[
            Post("2024-11-05 19:40", 0, [0]),
            Post("2024-11-05 18:05", 4, [4, 5]),
            Post("2024-11-04 23:50", None, [6]),
        ],
    ),
    # A list with no article above it, every entry headline-less, two at the same minute.
    Scenario(
        "text-en-headlineless", "text", "en", "Europe/London", "2024-07-01T20:00:00Z", clock="24h",
        title=None,
        posts=[
            Post("2024-07-01 20:55", None, [0]),
            Post("2024-07-01 20:30", None, [1]),
            Post("2024-07-01 20:30", None, [2]),
            Post("2024-07-01 19:10", None, [3]),
            Post("2024-06-30 23:59", None, [4]),
        ],
    ),
    # --- JSON-LD LiveBlogPosting ---------------------------------------------------------
    Scenario(
        "jsonld-london-graph", "jsonld", "en", "Europe/London", "2024-10-27T12:00:00Z", form="graph",
        title=5, article_paras=[5], published="2024-10-26 20:00", modified="2024-10-27 11:50",
        posts=[
            Post("2024-10-27 11:30", 0, [0, 1], updated="2024-10-27 11:50", anchor="block-a4"),
            Post("2024-10-27 01:45", 1, [2], fold=1, anchor="block-a3"),
            Post("2024-10-27 01:30", 2, [3], fold=0, anchor="block-a2"),
            Post("2024-10-26 22:00", None, [4], anchor="block-a1"),
        ],
    ),
    Scenario(
        "jsonld-ny-array-spring", "jsonld", "en", "America/New_York", "2025-03-09T15:00:00Z", form="array",
        title=6,
        posts=[
            Post("2025-03-09 10:05", 6, [5], offset_style="z"),
            Post("2025-03-09 03:20", 7, [6, 7]),
            Post("2025-03-09 01:50", 8, [8]),
            Post("2025-03-08 22:30", None, [9], offset_style="z"),
        ],
    ),
    Scenario(
        "jsonld-kyiv-autofill", "jsonld", "en", "Europe/Kyiv", "2024-11-04T12:00:00Z", form="autofill",
        title=10, article_paras=[14], published="2024-11-04 08:00",
        posts=[
            Post("2024-11-04 13:40", None, [10], anchor="u-3"),
            Post("2024-11-04 12:10", 9, [11, 12], anchor="u-2"),
            Post("2024-11-04 09:00", None, [13], anchor="u-1"),
        ],
    ),
    Scenario(
        "jsonld-de-berlin", "jsonld", "de", "Europe/Berlin", "2025-03-03T16:00:00Z",
        title=6, article_paras=[8], published="2025-03-03 10:00", authors=1,
        posts=[
            Post("2025-03-03 16:45", 4, [4], anchor="liveblog-entry-88", authors=["Katrin Vogt"]),
            Post("2025-03-03 14:10", 5, [5, 6], anchor="liveblog-entry-87", updated="2025-03-03 14:30"),
            Post("2025-03-03 11:00", None, [7], anchor="liveblog-entry-86"),
        ],
    ),
    Scenario(
        "jsonld-pair-a", "jsonld", "en", "Europe/London", "2024-11-04T15:00:00Z",
        title=15, article_paras=[16], published="2024-11-04 09:30",
        posts=[
            Post("2024-11-04 14:50", 11, [10], anchor="block-p3"),
            Post("2024-11-04 13:20", 12, [11, 12], anchor="block-p2"),
            Post("2024-11-04 11:05", None, [13], anchor="block-p1"),
            Post("2024-11-04 10:00", 13, [14], anchor="block-p0"),
        ],
    ),
    Scenario(
        "jsonld-pair-b", "jsonld", "en", "Europe/London", "2024-11-04T16:00:00Z",
        title=15, article_paras=[16], published="2024-11-04 09:30",
        posts=[
            Post("2024-11-04 15:40", 14, [15], anchor="block-p4"),
            Post("2024-11-04 14:50", 11, [10], anchor="block-p3"),
            Post("2024-11-04 13:20", 12, [11, 12], anchor="block-p2", updated="2024-11-04 15:10", edit=EDIT),
            Post("2024-11-04 11:05", None, [13], anchor="block-p1"),
        ],
    ),
    # JSON-LD lists only the newest three posts; the markup has all five with the same ids.
    Scenario(
        "jsonld-partial-blocks", "jsonld", "en", "Europe/London", "2024-06-10T18:00:00Z", form="partial",
        title=20, article_paras=[23], published="2024-06-10 11:00",
        posts=[
            Post("2024-06-10 18:40", 16, [17], anchor="block-x5"),
            Post("2024-06-10 17:55", 17, [18], anchor="block-x4"),
            Post("2024-06-10 16:20", None, [19], anchor="block-x3"),
            Post("2024-06-10 15:05", 18, [20, 21], anchor="block-x2"),
            Post("2024-06-10 12:30", 19, [22], anchor="block-x1"),
        ],
    ),
    # --- microdata -----------------------------------------------------------------------
    Scenario(
        "microdata-london", "microdata", "en", "Europe/London", "2024-11-04T20:00:00Z", title=21,
        posts=[
            Post("2024-11-04 19:50", 21, [24], anchor="mb-4"),
            Post("2024-11-04 18:30", 22, [25, 26], anchor="mb-3", updated="2024-11-04 19:05"),
            Post("2024-11-04 17:00", None, [27], anchor="mb-2"),
            Post("2024-11-04 09:45", 23, [28], anchor="mb-1"),
        ],
    ),
    Scenario(
        "microdata-es-madrid", "microdata", "es", "Europe/Madrid", "2024-11-05T19:00:00Z",
        title=5, article_paras=[7],
        posts=[
            Post("2024-11-05 19:40", 0, [0]),
            Post("2024-11-05 18:05", 4, [4, 5]),
            Post("2024-11-05 14:30", None, [6]),
        ],
    ),
    # Datetime attributes without an offset are read in the feed's zone; an ambiguous one
    # (03:20 on the Kyiv autumn change) takes zoneinfo's default, the first occurrence.
    Scenario(
        "microdata-uk-kyiv-naive", "microdata", "uk", "Europe/Kyiv", "2024-10-27T06:00:00Z", title=0,
        posts=[
            Post("2024-10-27 05:10", 0, [0], anchor="upd-3", offset_style="naive"),
            Post("2024-10-27 03:20", 2, [2], fold=0, anchor="upd-2", offset_style="naive"),
            Post("2024-10-27 02:40", 1, [1, 3], anchor="upd-1", offset_style="naive"),
        ],
    ),
    # --- Guardian-style block-{id} -------------------------------------------------------
    Scenario(
        "guardian-london", "guardian", "en", "Europe/London", "2024-11-04T18:00:00Z", title=24,
        article_paras=[14, 15],
        posts=[
            Post("2024-11-04 11:20", 11, [11, 12], anchor="block-g2", pinned=True, offset_style="z"),
            Post("2024-11-04 16:40", None, [0], anchor="block-g4", offset_style="z"),
            Post("2024-11-04 14:05", 10, [10], anchor="block-g3", updated="2024-11-04 15:00", offset_style="z"),
            Post("2024-11-04 11:20", 11, [11, 12], anchor="block-g2", offset_style="z"),
            Post("2024-11-04 09:15", 12, [13], anchor="block-g1", authors=["Priya Nandakumar"]),
        ],
    ),
    Scenario(
        "guardian-london-autumn", "guardian", "en", "Europe/London", "2024-10-27T03:00:00Z", title=13,
        clock="24h",
        posts=[
            Post("2024-10-27 01:50", 13, [16], fold=1, anchor="block-h4"),
            Post("2024-10-27 01:15", None, [17], fold=1, anchor="block-h3"),
            Post("2024-10-27 01:40", 14, [18], fold=0, anchor="block-h2"),
            Post("2024-10-27 00:30", 15, [19], anchor="block-h1"),
        ],
    ),
    Scenario(
        "guardian-pair-a", "guardian", "en", "Europe/London", "2024-03-31T12:00:00Z", title=26,
        article_paras=[25],
        posts=[
            Post("2024-03-31 12:30", 16, [20], anchor="block-q3"),
            Post("2024-03-31 02:15", 17, [21, 22], anchor="block-q2"),
            Post("2024-03-31 00:45", None, [23], anchor="block-q1"),
        ],
    ),
    Scenario(
        "guardian-pair-b", "guardian", "en", "Europe/London", "2024-03-31T13:00:00Z", title=26,
        article_paras=[25],
        posts=[
            Post("2024-03-31 13:40", 18, [24], anchor="block-q4"),
            Post("2024-03-31 12:30", 16, [20], anchor="block-q3"),
            Post("2024-03-31 02:15", 17, [21, 22], anchor="block-q2"),
            Post("2024-03-31 00:45", None, [23], anchor="block-q1", edit=EDIT),
        ],
    ),
    # --- BBC-style lx-stream, clock-only times -------------------------------------------
    # Fetched 00:40 GMT Nov 5: 00:35 and 00:02 are Nov 5, 23:48 falls back to Nov 4.
    Scenario(
        "bbc-london-midnight", "bbc", "en", "Europe/London", "2024-11-05T00:40:00Z", clock="24h", title=27,
        posts=[
            Post("2024-11-05 00:35", 19, [26], anchor="post_5"),
            Post("2024-11-05 00:02", 20, [27, 28], anchor="post_4"),
            Post("2024-11-04 23:48", None, [29], anchor="post_3"),
            Post("2024-11-04 22:15", 21, [30], anchor="post_2"),
            Post("2024-11-04 13:00", 22, [31], anchor="post_1"),
        ],
    ),
    # Fetched 02:30 GMT on the London autumn change: 02:20 is GMT only; 01:55 and 01:10 are
    # the second pass (GMT); 01:45 cannot be the second (01:45Z > 01:10Z): first pass, BST
    # (00:45Z); 01:05 first pass too (00:05Z); 23:50 the evening before (BST).
    Scenario(
        "bbc-london-autumn", "bbc", "en", "Europe/London", "2024-10-27T02:30:00Z", clock="24h", title=28,
        posts=[
            Post("2024-10-27 02:20", 23, [0], anchor="post_6"),
            Post("2024-10-27 01:55", 24, [1], fold=1, anchor="post_5"),
            Post("2024-10-27 01:10", None, [2], fold=1, anchor="post_4"),
            Post("2024-10-27 01:45", 25, [3], fold=0, anchor="post_3"),
            Post("2024-10-27 01:05", 26, [4], fold=0, anchor="post_2"),
            Post("2024-10-26 23:50", 27, [5], anchor="post_1"),
        ],
    ),
    # Fetched 4:30 AM EDT on the New York spring change: 3:05 AM is EDT (07:05Z), 1:50 AM EST.
    Scenario(
        "bbc-ny-spring", "bbc", "en", "America/New_York", "2025-03-09T08:30:00Z", title=29,
        posts=[
            Post("2025-03-09 04:10", 28, [6], anchor="post_15"),
            Post("2025-03-09 03:05", 29, [7, 8], anchor="post_14"),
            Post("2025-03-09 01:50", None, [9], anchor="post_13"),
            Post("2025-03-09 00:10", 0, [10], anchor="post_12"),
            Post("2025-03-08 21:00", 1, [11], anchor="post_11"),
        ],
    ),
    # --- generic repeated blocks ---------------------------------------------------------
    Scenario(
        "generic-en-ny-autumn", "generic", "en", "America/New_York", "2024-11-03T12:00:00Z", title=2,
        posts=[
            Post("2024-11-03 06:40", 2, [12], anchor="card-5"),
            Post("2024-11-03 01:30", 3, [13, 14], fold=1, anchor="card-4"),
            Post("2024-11-03 01:30", None, [15], fold=0, anchor="card-3"),
            Post("2024-11-02 23:00", 4, [16], anchor="card-2"),
        ],
    ),
    Scenario(
        "generic-ru-list", "generic", "ru", "Europe/Moscow", "2024-11-04T12:00:00Z", form="list",
        title=8, article_paras=[0],
        posts=[
            Post("2024-11-04 14:50", 5, [7]),
            Post("2024-11-04 13:20", 6, [8, 9]),
            Post("2024-11-04 09:00", None, [10]),
        ],
    ),
    # Clock-only <time> text, fetched 00:30 EET on Nov 5: 00:20 is Nov 5, the rest Nov 4.
    Scenario(
        "generic-uk-clockonly", "generic", "uk", "Europe/Kyiv", "2024-11-04T22:30:00Z", form="clockonly",
        clock="24h", title=11,
        posts=[
            Post("2024-11-05 00:20", 3, [4], anchor="news-104"),
            Post("2024-11-04 23:55", 4, [5, 6], anchor="news-103"),
            Post("2024-11-04 22:10", None, [7], anchor="news-102"),
            Post("2024-11-04 18:00", 5, [10], anchor="news-101"),
        ],
    ),
    Scenario(
        "generic-es-spring", "generic", "es", "Europe/Madrid", "2025-03-30T10:00:00Z", title=6,
        clock="24h",
        posts=[
            Post("2025-03-30 11:45", 5, [7], anchor="entrada-3"),
            Post("2025-03-30 03:10", 6, [8], anchor="entrada-2"),
            Post("2025-03-30 01:50", None, [4], anchor="entrada-1"),
        ],
    ),
    # --- ordinary article pages ----------------------------------------------------------
    Scenario(
        "article-en-jsonld", "article", "en", "Europe/London", "2024-11-04T12:00:00Z", title=25,
        article_paras=[0, 1, 2, 3], published="2024-11-04 07:00", modified="2024-11-04 09:30", authors=2,
        posts=[],
    ),
    Scenario(
        "article-uk-og", "article", "uk", "Europe/Kyiv", "2024-11-04T12:00:00Z", title=2, form="og",
        article_paras=[0, 1, 2, 3], published="2024-11-04 10:00", authors=1, posts=[],
    ),
    Scenario(
        "article-de-same-dates", "article", "de", "Europe/Berlin", "2024-11-04T12:00:00Z", title=7,
        article_paras=[0, 1, 2, 3], published="2024-11-04 10:00", modified="2024-11-04 10:00", posts=[],
    ),
]

PAIRS = [
    {
        "a": "text-en-pair-a",
        "b": "text-en-pair-b",
        "edited": ["Regional airport diverts flights as fog thickens"],
        "inserted": ["Hospital opens overflow ward after heating failure"],
        "deleted": [],
    },
    {"a": "jsonld-pair-a", "b": "jsonld-pair-b", "edited": ["block-p2"], "inserted": ["block-p4"],
     "deleted": ["block-p0"]},
    {"a": "guardian-pair-a", "b": "guardian-pair-b", "edited": ["block-q1"], "inserted": ["block-q4"],
     "deleted": []},
]
