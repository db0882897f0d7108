-- Page views, hint shows and hint clicks per <key> over the validated search page views in view
-- `pv_days`, overall and per feature slot (hint type or family, column `hint_slot`). Placeholders: <key>,
-- <prefix> (column name prefix), <per_slot> (one shows/clicks pair per slot).
SELECT
  {key},
  CAST(COUNT(*) AS BIGINT) AS {prefix}page_views,
  CAST(COUNT(hint_type) AS BIGINT) AS {prefix}hint_shows,
  CAST(COALESCE(SUM(CASE WHEN hint_type IS NOT NULL AND hint_clicked THEN 1 ELSE 0 END), 0) AS BIGINT) AS {prefix}hint_clicks,
  {per_slot}
FROM pv_days
GROUP BY {key}
