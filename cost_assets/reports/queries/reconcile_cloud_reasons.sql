-- The cloud bill per day and reason from mart.vm_reconciliation, every service category (network and public
-- IPs are not_estimated_component) and currency (amounts in the bill's currency, not converted).
select usage_date,
       reason,
       currency_code,
       count(*) as grain_rows,
       sum(estimated_vm_cost_usd) as estimated_vm_usd,
       sum(estimated_disk_cost_usd) as estimated_disk_usd,
       sum(billed_cost) as billed_cost,
       sum(effective_cost) as effective_cost
from mart.vm_reconciliation
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
group by usage_date, reason, currency_code
order by usage_date, effective_cost desc nulls last, reason, currency_code
