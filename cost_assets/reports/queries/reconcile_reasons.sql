-- Why the estimate and the bill differ: mart.reconciliation's reason codes with their rows, DBUs and $.
select reason,
       count(*) as grain_rows,
       sum(billed_dbus) as billed_dbus,
       sum(billed_cost_usd) as billed_usd,
       sum(billed_cost_usd) / nullif(sum(sum(billed_cost_usd)) over (), 0) as bill_share,
       sum(estimated_cost_usd) as estimated_dbu_usd,
       sum(delta_usd) as delta_usd
from mart.reconciliation
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
group by reason
order by billed_usd desc nulls last, reason
