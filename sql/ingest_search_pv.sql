-- Validate one day of raw search page views. Every row gets the first rule it breaks as
-- reject_reason (NULL = clean); nothing is dropped. Placeholders: <ds> (the partition's day),
-- <in_catalog> (SQL true when hint_type is in the catalog),
-- <missing_propensity> (SQL true when a missing propensity is a reject: FALSE for logs without them), <required_null_checks>, <type_checks>.
WITH typed AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts, user_id, page) AS event_id_rank
  FROM search_pv_raw
)
SELECT * EXCEPT (event_id_rank),
  CASE
    {type_checks}
    {required_null_checks}
    WHEN event_id_rank > 1 THEN 'duplicate_event_id'
    WHEN to_date(ts) <> DATE '{ds}' THEN 'ts_outside_partition'
    WHEN page < 1 THEN 'page_below_1'
    WHEN bucket NOT IN ('baseline', 'policy', 'explore') THEN 'unknown_bucket'
    WHEN hint_type IS NOT NULL AND NOT ({in_catalog}) THEN 'hint_not_in_catalog'
    WHEN hint_type IS NOT NULL AND NOT array_contains(candidates, hint_type) THEN 'hint_not_in_candidates'
    WHEN hint_type IS NOT NULL AND ({missing_propensity} OR propensity <= 0 OR propensity > 1) THEN 'bad_propensity'
    WHEN hint_type IS NULL AND hint_clicked THEN 'click_without_hint'
    WHEN item_clicks < 0 OR purchase_amount < 0 THEN 'negative_count_or_amount'
    ELSE NULL
  END AS reject_reason
FROM typed
