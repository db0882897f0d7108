-- Hint shows and clicks per user over the validated search page views in view `pv_days`,
-- overall and per hint type. Placeholder: <per_type> (one shows/clicks pair per catalog type).
SELECT
  user_id,
  CAST(COUNT(hint_type) AS BIGINT) AS hint_shows,
  CAST(COALESCE(SUM(CASE WHEN hint_type IS NOT NULL AND hint_clicked THEN 1 ELSE 0 END), 0) AS BIGINT) AS hint_clicks,
  {per_type}
FROM pv_days
GROUP BY user_id
