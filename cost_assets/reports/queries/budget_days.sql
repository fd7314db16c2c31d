-- Every budget's spend to date, forecast and amount per day in $1..$2: the burn-down.
select usage_date, budget, amount_usd, spend_to_date_usd, forecast_usd
from mart.budget_status
where usage_date between $1 and $2 and ($3::varchar is null or workspace_id = $3)
  and ($4::varchar is null or budget = $4)
order by budget, usage_date
