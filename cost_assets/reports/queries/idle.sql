-- Idle per cluster (or warm instance pool): the bill's DBU $ handed to idle (mart.attributed_costs), its
-- share of the whole bill and of the cluster's own bill, and the idle estimate (DBU $ + VM $ + disk $, run_costs).
with bill as (
  select resource_id,
         sum(case when consumer = 'idle' then billed_cost_usd else 0 end) as idle_billed_usd,
         sum(billed_cost_usd) as cluster_billed_usd
  from mart.attributed_costs
  where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by resource_id),
total as (select sum(cluster_billed_usd) as billed_usd from bill),
est as (
  select cluster_id as resource_id,
         bool_or(is_shared_cluster) as shared,
         sum(total_cost_usd) as idle_estimated_total_usd,
         sum(vm_cost_usd) as idle_estimated_vm_usd,
         sum(disk_cost_usd) as idle_estimated_disk_usd
  from mart.run_costs
  where consumer = 'idle' and usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  group by cluster_id)
select resource_id as cluster_id,
       coalesce(idle_billed_usd, 0) as idle_billed_usd,
       coalesce(idle_billed_usd, 0) / nullif(total.billed_usd, 0) as bill_share,
       cluster_billed_usd,
       coalesce(idle_billed_usd, 0) / nullif(cluster_billed_usd, 0) as cluster_idle_share,
       idle_estimated_total_usd, idle_estimated_vm_usd, idle_estimated_disk_usd
from est full join bill using (resource_id) cross join total
where coalesce(idle_billed_usd, 0) > 0 or idle_estimated_total_usd is not null
order by idle_billed_usd desc, idle_estimated_total_usd desc nulls last, cluster_id
