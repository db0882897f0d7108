-- Long-term user features as of ds: the user's counts (view `counts`, from lt_sum.sql) with
-- demographics from the latest profile snapshot at or before ds, taken at the start of its day
-- (view `profile`). Users known to either appear. Placeholder: <count_columns>.
SELECT
  COALESCE(c.user_id, pr.user_id) AS user_id,
  COALESCE(pr.gender, 'U') AS gender,
  pr.age AS age,
  pr.purchase_power AS purchase_power,
  {count_columns}
FROM counts c FULL OUTER JOIN profile pr ON c.user_id = pr.user_id
