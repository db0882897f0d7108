-- Real-time features of the page views of day <ds>, computed over view `pv_lookback` (validated
-- search page views of <ds> and the days before it, so windows cross midnight). Only rows strictly
-- before the event count; page views of a user are ordered by (ts, event_id).
-- Placeholders: <ds>, <window_pvs>, <per_slot_counts> (clicks and shows per feature slot over the
-- `hint_slot` column).
WITH ordered AS (
  SELECT
    event_id, ts, user_id, session_id, query_id, page, hint_type, hint_slot, hint_clicked, ds,
    {per_slot_counts},
    COLLECT_LIST(hint_type) OVER (
      PARTITION BY session_id, query_id ORDER BY page, ts, event_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS shown_in_session
  FROM pv_lookback
)
SELECT * EXCEPT (hint_type, hint_slot, hint_clicked, ds)
FROM ordered
WHERE ds = '{ds}'
