-- system.serving.endpoint_usage of one workspace and time range, with each request's endpoint and
-- entity (the latest version of system.serving.served_entities). Parameters: :workspace_id,
-- :start_time, :end_time.
SELECT u.workspace_id, u.account_id, u.client_request_id, u.databricks_request_id, u.requester,
       u.status_code, u.request_time, u.input_token_count, u.output_token_count, u.usage_context,
       u.served_entity_id, e.endpoint_name, e.entity_name
FROM system.serving.endpoint_usage AS u
LEFT JOIN (
  SELECT served_entity_id, endpoint_name, entity_name
  FROM system.serving.served_entities
  QUALIFY ROW_NUMBER() OVER (PARTITION BY served_entity_id ORDER BY change_time DESC) = 1
) AS e ON u.served_entity_id = e.served_entity_id
WHERE u.workspace_id = :workspace_id
  AND u.request_time >= :start_time AND u.request_time < :end_time
