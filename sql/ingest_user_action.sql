-- Validate one day of raw user actions. A user is known when the latest validated profile
-- snapshot at or before the day (view `known_users`) has them.
-- Placeholders: <ds>, <required_null_checks>, <type_checks>.
WITH typed AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts, user_id) AS event_id_rank
  FROM user_action_raw
),
checked AS (
  SELECT typed.*, k.known_user_id
  FROM typed LEFT JOIN (SELECT DISTINCT user_id AS known_user_id FROM known_users) k
    ON typed.user_id = k.known_user_id
)
SELECT * EXCEPT (event_id_rank, known_user_id),
  CASE
    {type_checks}
    {required_null_checks}
    WHEN event_id_rank > 1 THEN 'duplicate_event_id'
    WHEN to_date(ts) <> DATE '{ds}' THEN 'ts_outside_partition'
    WHEN action_type NOT IN ('browse', 'click', 'cart', 'purchase') THEN 'unknown_action_type'
    WHEN known_user_id IS NULL THEN 'unknown_user'
    ELSE NULL
  END AS reject_reason
FROM checked
