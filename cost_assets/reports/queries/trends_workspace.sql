-- Per day and workspace (mart.attributed_costs: the bill's workspace id, '(none)' when it names none): the
-- bill's DBU $ and the estimate's DBU $ for the same rows (like for like: the bill has no VM $).
select usage_date, coalesce(workspace_id, '(none)') as value,
       sum(billed_cost_usd) as billed_usd,
       sum(estimated_cost_usd) as estimated_dbu_usd
from mart.attributed_costs
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
group by usage_date, value
order by usage_date, billed_usd desc nulls last, value
