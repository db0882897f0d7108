-- Real-time features of the page views of day <ds>, strictly before each page view. Views:
-- `pv_lookback` (validated search page views of <ds> and the days before it, so windows cross
-- midnight) and `actions` (the user actions the last-5 features need, joined to `item`).
-- Page views of a user are ordered by (ts, event_id); an action counts as earlier only when its ts
-- is strictly before the page view's (a page view sorts before actions of the same ts).
--
-- One shuffle by user: every window below partitions by user_id (plus finer keys), so Spark only
-- sorts within the partitions, and nothing is joined back.
-- Counts over the previous <window_pvs> page views are differences of running totals:
-- count(rows i-N .. i-1) = run(i-1) - run(i-N-1), two LAGs of one running sum per count. The last
-- 5 actions (clicks) are a 5-row window over the user's actions (clicks) alone, carried forward to
-- each page view by LAST(..., ignore nulls) over a growing frame. No cost grows with a window length.
-- Placeholders: <ds>, <running_counts> (a running SUM per count over window `s`),
-- <window_counts> (the LAG differences), <running_columns> (names of the running sums). Actions add 0
-- to the running sums, so they run over the page views and actions in one window.
WITH stream AS (
  SELECT /*+ REPARTITION(user_id) */ * FROM (
    SELECT event_id, ts, user_id, session_id, query_id, page, ds, hint_type, hint_slot, hint_clicked,
           0 AS is_action, 0 AS is_click, CAST(NULL AS STRING) AS action_type, CAST(NULL AS DOUBLE) AS price,
           CAST(NULL AS INT) AS category_id, CAST(NULL AS DOUBLE) AS conversion_rate
    FROM pv_lookback
    UNION ALL
    SELECT event_id, ts, user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           1, CAST(action_type = 'click' AS INT), action_type, price, category_id, conversion_rate
    FROM actions
  )
),
upto AS (
  SELECT *,
    CASE WHEN is_action = 1 THEN COLLECT_LIST(action_type) OVER a5 END AS actions_upto,
    CASE WHEN is_click = 1 THEN COLLECT_LIST(STRUCT(price, category_id, conversion_rate)) OVER c5 END AS clicks_upto
  FROM stream
  WINDOW a5 AS (PARTITION BY user_id, is_action ORDER BY ts, event_id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW),
         c5 AS (PARTITION BY user_id, is_click ORDER BY ts, event_id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW)
),
carried AS (
  SELECT *,
    LAST(actions_upto, TRUE) OVER s AS last_actions,
    LAST(clicks_upto, TRUE) OVER s AS last_clicks,
    {running_counts}
  FROM upto
  WINDOW s AS (PARTITION BY user_id ORDER BY ts, is_action, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
page_views AS (
  SELECT
    event_id, ts, user_id, session_id, query_id, page, ds, is_action, last_actions, last_clicks, {running_columns},
    COLLECT_LIST(hint_type) OVER (
      PARTITION BY user_id, session_id, query_id ORDER BY page, ts, event_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS shown_in_session
  FROM carried
  WHERE is_action = 0
),
windowed AS (
  SELECT *,
    {window_counts}
  FROM page_views
  -- is_action is 0 on every page view: ordering by it too lets Spark reuse the sort of `s`
  WINDOW o AS (PARTITION BY user_id ORDER BY ts, is_action, event_id)
)
SELECT * EXCEPT (ds, is_action, last_actions, last_clicks, {running_columns}),
  COALESCE(reverse(last_actions), CAST(array() AS ARRAY<STRING>)) AS last5_action_types,
  COALESCE(transform(reverse(last_clicks), x -> x.price), CAST(array() AS ARRAY<DOUBLE>)) AS last5_click_item_price,
  COALESCE(transform(reverse(last_clicks), x -> x.category_id), CAST(array() AS ARRAY<INT>)) AS last5_click_item_category,
  COALESCE(transform(reverse(last_clicks), x -> x.conversion_rate), CAST(array() AS ARRAY<DOUBLE>)) AS last5_click_item_conversion_rate
FROM windowed
WHERE ds = '{ds}'
