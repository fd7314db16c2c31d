-- Per day: one job's ($4) or one run's ($5) task runs from mart.run_costs (the estimate: DBU $ + VM $ + disk $), the
-- billed DBU $ handed to it in mart.attributed_costs and its share of that day's bill, the part of its
-- estimate on shared (all-purpose) clusters, and the idle estimate of the clusters it ran on that day.
with mine as (
  select * from mart.run_costs
  where consumer = 'run' and usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
    and ($4::bigint is null or job_id = $4) and ($5::bigint is null or run_id = $5)),
est as (
  select usage_date,
         count(distinct run_id) as runs,
         count(distinct task_run_id) as task_runs,
         sum(runtime_hours) as runtime_hours,
         sum(dbus) as dbus,
         sum(dbu_cost_usd) as estimated_dbu_usd,
         sum(vm_cost_usd) as estimated_vm_usd,
         sum(disk_cost_usd) as estimated_disk_usd,
         sum(total_cost_usd) as estimated_total_usd,
         sum(case when is_shared_cluster then total_cost_usd else 0 end) as shared_cluster_usd
  from mine group by usage_date),
day_bill as (
  select usage_date, sum(billed_cost_usd) as day_billed_usd
  from mart.attributed_costs
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by usage_date),
bill as (
  select usage_date, sum(billed_dbus) as billed_dbus, sum(billed_cost_usd) as billed_usd
  from mart.attributed_costs
  where consumer = 'run' and usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
    and ($4::bigint is null or job_id = $4) and ($5::bigint is null or run_id = $5)
  group by usage_date),
idle as (
  select r.usage_date, sum(r.total_cost_usd) as idle_nearby_usd
  from mart.run_costs r
  join (select distinct usage_date, cluster_id from mine) c
    on r.usage_date = c.usage_date and r.cluster_id = c.cluster_id
  where r.consumer = 'idle'
  group by r.usage_date)
select usage_date, runs, task_runs, runtime_hours, dbus, estimated_dbu_usd, estimated_vm_usd, estimated_disk_usd,
       estimated_total_usd,        billed_dbus, billed_usd, billed_usd / nullif(day_billed_usd, 0) as bill_share,
       shared_cluster_usd, shared_cluster_usd / nullif(estimated_total_usd, 0) as shared_cluster_share,
       coalesce(idle_nearby_usd, 0) as idle_nearby_usd
from est full join bill using (usage_date) left join day_bill using (usage_date) left join idle using (usage_date)
order by usage_date
