-- system.serving.served_entities of one workspace (every version: the costing takes the latest per
-- entity). SELECT *: external_model_config and the other config structs differ between workspaces, and a
-- column a workspace lacks must not fail the read. Parameter: :workspace_id.
SELECT * FROM system.serving.served_entities WHERE workspace_id = :workspace_id
