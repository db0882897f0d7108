-- Long-term query features as of ds: the query's counts (view `counts`, from lt_sum.sql) with its
-- category from the raw query table (view `queries`). Queries known to either appear.
-- Placeholder: <count_columns>.
SELECT
  COALESCE(c.query_id, q.query_id) AS query_id,
  q.category_id AS query_category,
  {count_columns}
FROM counts c FULL OUTER JOIN queries q ON c.query_id = q.query_id
