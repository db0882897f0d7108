-- The user's last 5 actions before each page view of day <ds> (most recent first), and the price,
-- category and conversion rate of the last 5 clicked items. Views: `pv_day` (page views of the day:
-- event_id, user_id, ts) and `actions` (validated user actions of the day and the lookback days,
-- joined to `item`). An action counts only when its ts is strictly before the page view's ts.
-- The cost is linear in rows: a running count gives each page view the number of earlier actions,
-- and its last 5 are fetched by an equi-join on (user, action index).
WITH stream AS (
  SELECT user_id, ts, event_id, 0 AS is_action, 0 AS is_click,
         CAST(NULL AS STRING) AS action_type, CAST(NULL AS DOUBLE) AS price,
         CAST(NULL AS INT) AS category_id, CAST(NULL AS DOUBLE) AS conversion_rate
  FROM pv_day
  UNION ALL
  SELECT user_id, ts, event_id, 1, CAST(action_type = 'click' AS INT), action_type, price, category_id, conversion_rate
  FROM actions
),
counted AS (
  SELECT *,
    SUM(is_action) OVER w AS actions_so_far,
    SUM(is_click) OVER w AS clicks_so_far
  FROM stream
  -- a page view sorts before actions of the same ts, so those do not count as earlier
  WINDOW w AS (PARTITION BY user_id ORDER BY ts, is_action, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
pv_counts AS (
  SELECT event_id, user_id, actions_so_far, clicks_so_far FROM counted WHERE is_action = 0
),
wanted_actions AS (
  SELECT event_id, user_id, actions_so_far - k AS idx, k
  FROM pv_counts LATERAL VIEW explode(sequence(0, 4)) s AS k
  WHERE actions_so_far - k >= 1
),
wanted_clicks AS (
  SELECT event_id, user_id, clicks_so_far - k AS idx, k
  FROM pv_counts LATERAL VIEW explode(sequence(0, 4)) s AS k
  WHERE clicks_so_far - k >= 1
),
last_actions AS (
  SELECT w.event_id, sort_array(collect_list(struct(w.k, a.action_type))) AS items
  FROM wanted_actions w
  JOIN (SELECT user_id, actions_so_far AS idx, action_type FROM counted WHERE is_action = 1) a
    ON w.user_id = a.user_id AND w.idx = a.idx
  GROUP BY w.event_id
),
last_clicks AS (
  SELECT w.event_id, sort_array(collect_list(struct(w.k, c.price, c.category_id, c.conversion_rate))) AS items
  FROM wanted_clicks w
  JOIN (SELECT user_id, clicks_so_far AS idx, price, category_id, conversion_rate FROM counted WHERE is_click = 1) c
    ON w.user_id = c.user_id AND w.idx = c.idx
  GROUP BY w.event_id
)
SELECT
  p.event_id,
  COALESCE(transform(la.items, x -> x.action_type), CAST(array() AS ARRAY<STRING>)) AS last5_action_types,
  COALESCE(transform(lc.items, x -> x.price), CAST(array() AS ARRAY<DOUBLE>)) AS last5_click_item_price,
  COALESCE(transform(lc.items, x -> x.category_id), CAST(array() AS ARRAY<INT>)) AS last5_click_item_category,
  COALESCE(transform(lc.items, x -> x.conversion_rate), CAST(array() AS ARRAY<DOUBLE>)) AS last5_click_item_conversion_rate
FROM pv_day p
LEFT JOIN last_actions la ON p.event_id = la.event_id
LEFT JOIN last_clicks lc ON p.event_id = lc.event_id
