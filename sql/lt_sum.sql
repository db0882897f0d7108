-- Long-term counts as of ds: the previous snapshot's counts (view `prev_counts`) plus the counts of
-- the day before ds (view `day_counts`), minus, for each recent window of W days, the counts of the
-- day that leaves it (view `expired_<W>`, joined as e<W>). So the cost of a night does not grow with
-- the window length. Placeholders: <key>, <count_sums> (one expression per count column),
-- <expired_joins> (one LEFT JOIN per window).
SELECT COALESCE(p.{key}, d.{key}) AS {key}, {count_sums}
FROM prev_counts p FULL OUTER JOIN day_counts d ON p.{key} = d.{key}
{expired_joins}
