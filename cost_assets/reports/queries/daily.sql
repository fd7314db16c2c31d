-- Per day ($1..$2, workspace $3 or all): the Databricks bill (DBU $ only, from mart.reconciliation: the plain
-- sum over every record type, priced at the effective $/DBU of the hour), where it went (mart.attributed_costs),
-- and the estimate (mart.run_costs: DBU $ + VM $ + the nodes' disk $). The estimate's DBU $ is what compares with the bill.
with bill as (
  select usage_date,
         sum(billed_dbus) as billed_dbus,
         sum(billed_cost_usd) as billed_usd,
         sum(case when unpriced then billed_dbus else 0 end) as unpriced_dbus
  from mart.reconciliation
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by usage_date),
est as (
  select usage_date,
         sum(dbu_cost_usd) as estimated_dbu_usd,
         sum(vm_cost_usd) as estimated_vm_usd,
         sum(disk_cost_usd) as estimated_disk_usd,
         sum(total_cost_usd) as estimated_total_usd
  from mart.run_costs
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by usage_date),
led as (
  select usage_date,
         sum(case when consumer = 'run' then billed_cost_usd else 0 end) as runs_usd,
         sum(case when consumer = 'idle' then billed_cost_usd else 0 end) as idle_usd,
         sum(case when consumer = 'unattributed' then billed_cost_usd else 0 end) as unattributed_usd
  from mart.attributed_costs
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by usage_date)
select usage_date, billed_dbus, billed_usd, unpriced_dbus, estimated_dbu_usd, estimated_vm_usd, estimated_disk_usd,
       estimated_total_usd, runs_usd, idle_usd, unattributed_usd
from bill full join est using (usage_date) full join led using (usage_date)
order by usage_date
