"""Order sync: the broker's orders brought into the desk's record.

paging (walk the broker's orders from the watermark), upsert (the two set-based writers),
live (the brokers' trade updates, and the stream process that follows them), lock (one sync
per account at a time), runs (queued syncs and their progress), snapshots (positions over
time), and the sync API (api, selectors, urls).
"""
