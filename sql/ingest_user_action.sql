-- Validate one day of raw user actions. Placeholders: <ds>, <required_null_checks>, <type_checks>.
WITH typed AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts, user_id) AS event_id_rank
  FROM user_action_raw
)
SELECT * EXCEPT (event_id_rank),
  CASE
    {type_checks}
    {required_null_checks}
    WHEN event_id_rank > 1 THEN 'duplicate_event_id'
    WHEN to_date(ts) <> DATE '{ds}' THEN 'ts_outside_partition'
    WHEN action_type NOT IN ('browse', 'click', 'cart', 'purchase') THEN 'unknown_action_type'
    ELSE NULL
  END AS reject_reason
FROM typed
