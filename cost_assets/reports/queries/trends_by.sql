-- Per day and value of one dimension ($4) of mart.cost_by_scope: the bill's DBU $ handed to it and the
-- estimate's DBU $ for the same rows (like for like: the bill has no VM $).
select usage_date, value,
       sum(billed_cost_usd) as billed_usd,
       sum(estimated_cost_usd) as estimated_dbu_usd
from mart.cost_by_scope
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3) and dimension = $4
group by usage_date, value
order by usage_date, billed_usd desc nulls last, value
