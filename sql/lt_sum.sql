-- Long-term counts as of ds: the previous snapshot's counts (view `prev_counts`) plus the counts of
-- the day before ds (view `day_counts`). Placeholders: <key>, <count_sums> (one
-- COALESCE(p.c, 0) + COALESCE(d.c, 0) per count column).
SELECT COALESCE(p.{key}, d.{key}) AS {key}, {count_sums}
FROM prev_counts p FULL OUTER JOIN day_counts d ON p.{key} = d.{key}
