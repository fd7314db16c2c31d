-- system.billing.list_prices of the account in USD: the price windows ref/dbu_prices takes when the
-- system tables are the billing source; the effective list price (promotions resolved), else the
-- default one. No parameters.
SELECT sku_name, cloud, usage_unit, currency_code, price_start_time, price_end_time,
       CAST(COALESCE(pricing.effective_list.`default`, pricing.`default`) AS DOUBLE) AS list_price
FROM system.billing.list_prices
WHERE currency_code = 'USD'
ORDER BY cloud, sku_name, price_start_time
