-- system.billing.usage for a range of days: the columns the shared parser reads (structs and maps
-- arrive as JSON text). Parameters: :first_day, :last_day.
SELECT record_id, account_id, workspace_id, record_type, ingestion_date, cloud, sku_name,
       usage_start_time, usage_end_time, usage_date, usage_unit, usage_quantity, billing_origin_product,
       usage_metadata, identity_metadata, product_features, custom_tags
FROM system.billing.usage
WHERE usage_date BETWEEN :first_day AND :last_day
