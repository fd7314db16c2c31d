-- system.billing.usage reduced in the warehouse to the raw/billing_usage contract and priced there.
-- One row per usage date × hour × resource × SKU × record type × tags × identity: the columns
-- downstream reads (the resource's ids from usage_metadata, is_photon/is_serverless, the identity
-- run_as/run_by/created_by/owned_by, the tag map as JSON text), so only those travel, never the full structs. Records that agree on all of
-- them are summed; the row keeps the record's id when it is alone, else a digest of its records' ids
-- (stable while the bill is, new when a record joins). list_cost_usd: quantity × the USD effective list
-- price (pricing.effective_list) of the canonical list_prices join (price_start_time < usage_end_time <= price_end_time), null when
-- any record of the row has no price (never $0). Parameters: :first_day, :last_day.
SELECT
  CASE WHEN COUNT(*) = 1 THEN MIN(u.record_id)
       ELSE 'agg-' || sha2(array_join(array_sort(collect_list(u.record_id)), '|'), 256) END AS record_id,
  u.account_id, u.workspace_id, u.record_type, u.ingestion_date, u.cloud, u.sku_name,
  u.usage_start_time, u.usage_end_time, u.usage_date, u.usage_unit,
  SUM(u.usage_quantity) AS usage_quantity,
  u.billing_origin_product,
  u.usage_metadata.cluster_id AS cluster_id,
  u.usage_metadata.warehouse_id AS warehouse_id,
  u.usage_metadata.endpoint_name AS endpoint_name,
  u.usage_metadata.instance_pool_id AS instance_pool_id,
  u.usage_metadata.node_type AS node_type,
  u.usage_metadata.job_id AS job_id,
  u.usage_metadata.job_run_id AS job_run_id,
  u.product_features.is_photon AS is_photon,
  u.product_features.is_serverless AS is_serverless,
  to_json(u.custom_tags) AS custom_tags,
  u.identity_metadata.run_as AS run_as,
  u.identity_metadata.run_by AS run_by,
  u.identity_metadata.created_by AS created_by,
  u.identity_metadata.owned_by AS owned_by,
  CASE WHEN COUNT(p.sku_name) = COUNT(*)
       THEN SUM(CAST(u.usage_quantity AS DOUBLE) * CAST(p.pricing.effective_list.`default` AS DOUBLE)) END AS list_cost_usd
FROM system.billing.usage AS u
LEFT JOIN system.billing.list_prices AS p
  ON u.sku_name = p.sku_name AND u.cloud = p.cloud AND u.usage_unit = p.usage_unit
  AND p.currency_code = 'USD'
  AND u.usage_end_time > p.price_start_time
  AND (p.price_end_time IS NULL OR u.usage_end_time <= p.price_end_time)
WHERE u.usage_date BETWEEN :first_day AND :last_day
GROUP BY ALL
