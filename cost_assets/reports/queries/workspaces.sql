-- Per workspace ($1..$2, workspace $3 or all): its bill (mart.reconciliation, DBU $), the job runs the estimate
-- found in it (mart.run_costs) and the $ of it handed to unattributed because the account does not list it
-- (mart.attributed_costs, reason workspace_not_configured; null: a workspace the account lists).
with bill as (
  select workspace_id, sum(billed_dbus) as billed_dbus, sum(billed_cost_usd) as billed_usd
  from mart.reconciliation
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by workspace_id),
runs as (
  select workspace_id, count(distinct run_id) as runs
  from mart.run_costs
  where consumer = 'run' and usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by workspace_id),
unlisted as (
  select workspace_id, sum(billed_cost_usd) as not_configured_usd
  from mart.attributed_costs
  where reason = 'workspace_not_configured' and usage_date between $1 and $2
    and ($3::varchar is null or workspace_id = $3)
  group by workspace_id)
select workspace_id, coalesce(runs, 0) as runs, billed_dbus, billed_usd, not_configured_usd
from bill full join runs using (workspace_id) left join unlisted using (workspace_id)
order by not_configured_usd is not null, billed_usd desc nulls last, workspace_id
