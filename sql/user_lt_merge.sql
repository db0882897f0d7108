-- Long-term user features as of ds: counts of the previous snapshot (view `prev_counts`) plus the
-- counts of the day before ds (view `day_counts`), with demographics from the latest profile
-- snapshot at or before ds, taken at the start of its day (view `profile`). Users known to any of the three appear.
-- Placeholder: <count_sums> (one COALESCE(p.c, 0) + COALESCE(d.c, 0) per count column).
WITH counts AS (
  SELECT COALESCE(p.user_id, d.user_id) AS user_id, {count_sums}
  FROM prev_counts p FULL OUTER JOIN day_counts d ON p.user_id = d.user_id
)
SELECT
  COALESCE(c.user_id, pr.user_id) AS user_id,
  COALESCE(pr.gender, 'U') AS gender,
  pr.age AS age,
  pr.purchase_power AS purchase_power,
  {count_columns}
FROM counts c FULL OUTER JOIN profile pr ON c.user_id = pr.user_id
