-- The $5 values of dimension $4 (team, tenant, project, cost_center, job, user) with the most billed $,
-- from mart.cost_by_scope. Every dimension sums to the whole bill ('(untagged)' is a value), so the
-- share is of the bill.
with g as (
  select value,
         sum(billed_dbus) as billed_dbus,
         sum(billed_cost_usd) as billed_usd,
         sum(estimated_cost_usd) as estimated_dbu_usd,
         sum(run_cost_usd) as runs_usd,
         sum(idle_cost_usd) as idle_usd,
         sum(unattributed_cost_usd) as unattributed_usd
  from mart.cost_by_scope
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3) and dimension = $4
  group by value)
select value, billed_dbus, billed_usd, billed_usd / nullif(sum(billed_usd) over (), 0) as bill_share,
       estimated_dbu_usd, runs_usd, idle_usd, unattributed_usd
from g
order by billed_usd desc nulls last, value
limit $5
