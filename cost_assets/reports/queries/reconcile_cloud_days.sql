-- The cloud bill per day from mart.vm_reconciliation: the estimate's VM $ against the VMs' billed and
-- effective cost (USD VM rows of clusters, pools, warehouses and untagged VMs; disks and network are in
-- reconcile_cloud_reasons). delta = effective − estimated; ratio = estimated ÷ effective.
select usage_date,
       count(*) as grain_rows,
       sum(estimated_vm_cost_usd) as estimated_vm_usd,
       sum(billed_cost) as billed_vm_usd,
       sum(effective_cost) as effective_vm_usd,
       sum(effective_cost) - sum(estimated_vm_cost_usd) as delta_usd,
       sum(estimated_vm_cost_usd) / nullif(sum(effective_cost), 0) as ratio
from mart.vm_reconciliation
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  and service_category = 'vm_compute' and currency_code = 'USD'
group by usage_date
order by usage_date
