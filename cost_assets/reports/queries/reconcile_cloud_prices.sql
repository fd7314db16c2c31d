-- What the cloud bill's VMs really cost per VM-hour over the window, by node type and pricing model, from
-- mart.observed_vm_prices: Σ effective ÷ Σ VM-hours (days add up, their prices are not averaged), against
-- the price sheet's price on the window's last observed day; what to tune the sheet to. The table has no
-- workspace (a node type's price is the account's).
select cloud,
       node_type_id,
       pricing_model,
       currency_code,
       count(distinct usage_date) as days,
       sum(node_hours) as vm_hours,
       sum(effective_cost) as effective_cost,
       sum(effective_cost) / nullif(sum(node_hours), 0) as effective_per_hour,
       arg_max(sheet_per_hour, usage_date) as sheet_per_hour,
       sum(effective_cost) / nullif(sum(node_hours), 0) / nullif(arg_max(sheet_per_hour, usage_date), 0)
           as ratio_to_sheet
from mart.observed_vm_prices
where usage_date between $1 and $2
group by cloud, node_type_id, pricing_model, currency_code
order by cloud, node_type_id, pricing_model, currency_code
