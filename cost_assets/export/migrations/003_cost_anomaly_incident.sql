-- mart.cost_anomalies gains the incident of each alertable row (docs/anomalies.md: the series one spend
-- change moved, grouped by their shared top resource contributor). Rows written before carry NULL.
ALTER TABLE finops.cost_anomalies ADD COLUMN incident_id TEXT;
