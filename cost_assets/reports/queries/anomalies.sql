-- Anomalies scored on a day in $1..$2, each (scored day, monitor, value) as its newest partition of
-- mart.cost_anomalies has it (a later as-of day may have escalated, closed or acknowledged it); only
-- high/low days and days inside an episode.
select scored_date, monitor, value, scope, state, actual_usd, expected_usd, impact_usd, anomaly_id, opened_on,
       status, feedback
from mart.cost_anomalies
where scored_date between $1 and $2
qualify row_number() over (partition by scored_date, monitor, value order by usage_date desc) = 1
  and (anomaly_id is not null or state in ('high', 'low'))
order by scored_date, abs(impact_usd) desc nulls last, monitor, value
