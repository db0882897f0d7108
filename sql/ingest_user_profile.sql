-- Validate one daily snapshot of user profiles. Placeholders: <required_null_checks>, <type_checks>.
WITH typed AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY gender, age, purchase_power) AS user_rank
  FROM user_profile_raw
)
SELECT * EXCEPT (user_rank),
  CASE
    {type_checks}
    {required_null_checks}
    WHEN user_rank > 1 THEN 'duplicate_user_id'
    WHEN gender NOT IN ('F', 'M', 'U') THEN 'unknown_gender'
    WHEN age IS NOT NULL AND (age < 0 OR age > 120) THEN 'age_out_of_range'
    WHEN purchase_power IS NOT NULL AND (purchase_power < 1 OR purchase_power > 5) THEN 'purchase_power_out_of_range'
    ELSE NULL
  END AS reject_reason
FROM typed
