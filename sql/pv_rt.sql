-- Real-time features of the page views of day <ds>, computed over view `pv_lookback` (validated
-- search page views of <ds> and the days before it, so windows cross midnight). Only rows strictly
-- before the event count; page views of a user are ordered by (ts, event_id).
-- Counts over the previous <window_pvs> page views are differences of running totals:
-- count(rows i-N .. i-1) = run(i-1) - run(i-N-1), two LAGs of one running sum per count, so the cost
-- does not grow with the window length N.
-- Placeholders: <ds>, <running_counts> (a running SUM per count over window `w`),
-- <window_counts> (the LAG differences), <running_columns> (names of the running sums).
WITH running AS (
  SELECT
    event_id, ts, user_id, session_id, query_id, page, ds,
    {running_counts},
    COLLECT_LIST(hint_type) OVER (
      PARTITION BY session_id, query_id ORDER BY page, ts, event_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS shown_in_session
  FROM pv_lookback
  WINDOW w AS (PARTITION BY user_id ORDER BY ts, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
windowed AS (
  SELECT *,
    {window_counts}
  FROM running
  WINDOW o AS (PARTITION BY user_id ORDER BY ts, event_id)
)
SELECT * EXCEPT (ds, {running_columns})
FROM windowed
WHERE ds = '{ds}'
