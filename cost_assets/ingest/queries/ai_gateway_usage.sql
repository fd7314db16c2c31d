-- system.ai_gateway.usage of one workspace and time range (AI Gateway usage tracking; a preview table, so
-- SELECT * and columns read by name, tolerating the ones a workspace lacks). Parameters: :workspace_id,
-- :start_time, :end_time.
SELECT * FROM system.ai_gateway.usage
WHERE workspace_id = :workspace_id
  AND request_time >= :start_time AND request_time < :end_time
