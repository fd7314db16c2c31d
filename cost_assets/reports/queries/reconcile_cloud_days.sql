-- The cloud bill per day from mart.vm_reconciliation: the estimate's VM $ against the VMs' billed and
-- effective cost (USD VM rows of clusters, pools, warehouses and untagged VMs), and its disk $ against the
-- managed disks' effective cost (USD disk rows); network and the rest are in reconcile_cloud_reasons.
-- Only what the bill could cover is compared: the estimate of a workspace the cloud bill has no charge
-- of at all that day (another subscription or account not exported, or a day the export lags) is shown
-- apart, in no_bill_estimated_vm_usd / no_bill_estimated_disk_usd, not in delta and ratio. Charges with no
-- workspace (untagged) are always compared.
-- delta = effective − estimated; ratio = estimated ÷ effective (VMs).
with rows as (
    select *,
           workspace_id is null
               or bool_or(effective_cost is not null) over (partition by usage_date, workspace_id) as covered
    from mart.vm_reconciliation
    where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
)
select usage_date,
       count(*) filter (where service_category = 'vm_compute' and covered) as grain_rows,
       sum(estimated_vm_cost_usd) filter (where covered) as estimated_vm_usd,
       sum(billed_cost) filter (where service_category = 'vm_compute') as billed_vm_usd,
       sum(effective_cost) filter (where service_category = 'vm_compute') as effective_vm_usd,
       sum(effective_cost) filter (where service_category = 'vm_compute')
           - sum(estimated_vm_cost_usd) filter (where covered) as delta_usd,
       sum(estimated_vm_cost_usd) filter (where covered)
           / nullif(sum(effective_cost) filter (where service_category = 'vm_compute'), 0) as ratio,
       sum(estimated_disk_cost_usd) filter (where covered) as estimated_disk_usd,
       sum(effective_cost) filter (where service_category = 'managed_disk') as effective_disk_usd,
       sum(estimated_vm_cost_usd) filter (where not covered) as no_bill_estimated_vm_usd,
       sum(estimated_disk_cost_usd) filter (where not covered) as no_bill_estimated_disk_usd
from rows
where service_category in ('vm_compute', 'managed_disk') and currency_code = 'USD'
group by usage_date
order by usage_date
