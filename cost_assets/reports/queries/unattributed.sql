-- The bill's DBU $ handed to unattributed ($1..$2, workspace $3 or all), per mart.attributed_costs reason
-- (serving, workspace_not_configured, warehouse, serverless, no_share, unpriced …).
select reason, sum(billed_dbus) as billed_dbus, sum(billed_cost_usd) as billed_usd
from mart.attributed_costs
where consumer = 'unattributed' and usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
group by reason
order by billed_usd desc nulls last, reason
