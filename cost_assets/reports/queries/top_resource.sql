-- The $5 workspaces, clusters or SKUs ($4: 'workspace', 'cluster' or 'sku') with the most billed $, from
-- mart.attributed_costs. The share is of the whole bill (warehouses, endpoints and serverless included),
-- so for clusters it is computed before the other resources are left out.
with g as (
  select case when $4 = 'sku' then coalesce(sku_name, '(none)')
              when $4 = 'workspace' then coalesce(workspace_id, '(none)')
              when resource_type = 'cluster' then resource_id end as value,
         sum(billed_dbus) as billed_dbus,
         sum(billed_cost_usd) as billed_usd,
         sum(estimated_cost_usd) as estimated_dbu_usd,
         sum(case when consumer = 'run' then billed_cost_usd else 0 end) as runs_usd,
         sum(case when consumer = 'idle' then billed_cost_usd else 0 end) as idle_usd,
         sum(case when consumer = 'unattributed' then billed_cost_usd else 0 end) as unattributed_usd
  from mart.attributed_costs
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by 1),
s as (
  select *, billed_usd / nullif(sum(billed_usd) over (), 0) as bill_share from g)
select value, billed_dbus, billed_usd, bill_share, estimated_dbu_usd, runs_usd, idle_usd, unattributed_usd
from s
where value is not null
order by billed_usd desc nulls last, value
limit $5
