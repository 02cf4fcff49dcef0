-- Every unit in circulation sits in some member account: balances add up to the last
-- day's money supply.
with balances as (
    select coalesce(sum(balance), 0) as total_balance from marts.account_balances
),

supply as (
    select coalesce(arg_max(money_supply, day), 0) as money_supply from marts.daily_circulation
)

select balances.total_balance, supply.money_supply
from balances, supply
where balances.total_balance <> supply.money_supply
