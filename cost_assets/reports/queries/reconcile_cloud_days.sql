-- The cloud bill per day from mart.vm_reconciliation: the estimate's VM $ against the VMs' billed and
-- effective cost (USD VM rows of clusters, pools, warehouses and untagged VMs), and its disk $ against the
-- managed disks' effective cost (USD disk rows); network and the rest are in reconcile_cloud_reasons.
-- delta = effective − estimated; ratio = estimated ÷ effective (VMs).
select usage_date,
       count(*) filter (where service_category = 'vm_compute') as grain_rows,
       sum(estimated_vm_cost_usd) as estimated_vm_usd,
       sum(billed_cost) filter (where service_category = 'vm_compute') as billed_vm_usd,
       sum(effective_cost) filter (where service_category = 'vm_compute') as effective_vm_usd,
       sum(effective_cost) filter (where service_category = 'vm_compute') - sum(estimated_vm_cost_usd) as delta_usd,
       sum(estimated_vm_cost_usd) / nullif(sum(effective_cost) filter (where service_category = 'vm_compute'), 0)
           as ratio,
       sum(estimated_disk_cost_usd) as estimated_disk_usd,
       sum(effective_cost) filter (where service_category = 'managed_disk') as effective_disk_usd
from mart.vm_reconciliation
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  and service_category in ('vm_compute', 'managed_disk') and currency_code = 'USD'
group by usage_date
order by usage_date
