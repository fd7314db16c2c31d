-- Each budget as it stood on its newest day in $1..$2 (mart.budget_status; optionally one budget, $4).
select usage_date, budget, scope, period, period_start, period_end, cost_basis, amount_usd, spend_to_date_usd,
       billed_to_date_usd, estimated_to_date_usd, forecast_usd, remaining_usd, pct_used, forecast_pct, state,
       estimated_days, missing_days
from mart.budget_status
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  and ($4::varchar is null or budget = $4)
qualify row_number() over (partition by budget order by usage_date desc) = 1
order by budget
