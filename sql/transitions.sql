-- Transitions of one day from view `steps_joined` (validated page views that showed a hint, joined
-- to their real-time features and to the user's long-term features as of that day).
-- An episode is (session, query); its steps are its pages in order. Candidates are the eligible
-- types minus those already shown in the episode. Placeholders: <state>, <stratum>.
WITH steps AS (
  SELECT
    concat(session_id, '|', query_id) AS episode_id,
    event_id, ts, user_id, bucket, page,
    {stratum} AS stratum,
    {state} AS state,
    hint_type AS action,
    propensity,
    array_sort(array_except(candidates, shown_in_session)) AS candidates,
    CAST(hint_clicked AS DOUBLE) AS hint_click,
    CAST(item_clicks AS DOUBLE) AS item_clicks,
    CAST(purchased AS DOUBLE) AS purchased,
    purchase_amount
  FROM steps_joined
)
SELECT
  *,
  CAST(ROW_NUMBER() OVER w - 1 AS INT) AS step,
  LEAD(state) OVER w AS next_state_or_null,
  LEAD(candidates) OVER w AS next_candidates_or_null
FROM steps
WINDOW w AS (PARTITION BY episode_id ORDER BY page, ts, event_id)
