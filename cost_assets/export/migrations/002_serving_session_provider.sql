-- mart.serving_costs gains the request's session and the model's provider (docs/ai-spend.md): two key
-- columns, so the unique key is rebuilt with them. Rows written before carry '(untagged)' for both.
ALTER TABLE finops.serving_costs
    ADD COLUMN session  TEXT NOT NULL DEFAULT '(untagged)',
    ADD COLUMN provider TEXT NOT NULL DEFAULT '(untagged)';

DO $$
DECLARE
    key_name TEXT;
BEGIN
    SELECT conname INTO key_name FROM pg_constraint
    WHERE conrelid = 'finops.serving_costs'::regclass AND contype = 'u';
    EXECUTE format('ALTER TABLE finops.serving_costs DROP CONSTRAINT %I', key_name);
END
$$;

ALTER TABLE finops.serving_costs
    ADD CONSTRAINT serving_costs_key
    UNIQUE (usage_date, workspace_id, tenant, agent, "user", session, endpoint_name, model, provider);
