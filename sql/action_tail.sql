-- What the last-5 features of later days need from a user's actions up to the end of a day: the
-- user's 5 most recent actions and 5 most recent clicks in view `actions_upto` (the previous tail
-- plus the day's validated actions), most recent = latest (ts, event_id). Carrying this small tail
-- from day to day keeps the real-time job from re-reading earlier days of actions.
WITH ranked AS (
  SELECT *,
    ROW_NUMBER() OVER latest_first AS action_rank,
    SUM(CASE WHEN action_type = 'click' THEN 1 ELSE 0 END) OVER latest_first AS click_rank
  FROM actions_upto
  -- one sort serves both ranks: a click's rank among clicks is the running count of clicks
  WINDOW latest_first AS (PARTITION BY user_id ORDER BY ts DESC, event_id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT event_id, ts, user_id, session_id, action_type, item_id
FROM ranked
WHERE action_rank <= 5 OR (action_type = 'click' AND click_rank <= 5)
