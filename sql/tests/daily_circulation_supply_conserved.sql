-- Money is conserved: each day's money_supply equals the previous day's plus issued
-- minus redeemed minus fees. Offending days are returned.
with daily as (
    select
        *,
        lag(money_supply, 1, 0) over (order by day) as previous_supply
    from marts.daily_circulation
)

select day, previous_supply, issued, redeemed, fees, money_supply
from daily
where money_supply <> previous_supply + issued - redeemed - fees
