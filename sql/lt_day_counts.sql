-- Page views, hint shows and hint clicks per <key> over the validated search page views in view
-- `pv_days` (with `day`, the partition's date, and `hint_slot`, the feature slot of the hint), over
-- all of them and over the days of each recent window before ds. Placeholders: <key>, <counts>
-- (one SUM per count column: all-time, then `_<W>d` columns restricted to day >= ds - W).
SELECT
  {key},
  {counts}
FROM pv_days
GROUP BY {key}
