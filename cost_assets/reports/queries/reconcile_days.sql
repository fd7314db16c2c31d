-- Accuracy per day from mart.reconciliation (resource × hour × SKU): the bill's DBU $, the estimate's DBU $
-- for the same rows, and the share of billed $ on rows whose estimate is within tolerance (|ratio − 1| ≤ 5 %).
select usage_date,
       count(*) as grain_rows,
       sum(billed_cost_usd) as billed_usd,
       sum(estimated_cost_usd) as estimated_dbu_usd,
       sum(case when within_tolerance then billed_cost_usd else 0 end) / nullif(sum(billed_cost_usd), 0)
         as within_tolerance_share
from mart.reconciliation
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
group by usage_date
order by usage_date
