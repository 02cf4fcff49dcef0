-- Each month equals the sum of its days, and its closing supply is its last day's.
with daily as (
    select
        cast(date_trunc('month', day) as date) as month,
        sum(issued) as issued,
        sum(redeemed) as redeemed,
        sum(fees) as fees,
        sum(transfer_volume) as transfer_volume,
        sum(transfer_count) as transfer_count,
        arg_max(money_supply, day) as money_supply_end
    from marts.daily_circulation
    group by 1
)

select daily.month, 'differs from daily' as problem
from daily
full join marts.monthly_circulation as monthly on monthly.month = daily.month
where (daily.issued, daily.redeemed, daily.fees, daily.transfer_volume,
       daily.transfer_count, daily.money_supply_end)
   is distinct from
      (monthly.issued, monthly.redeemed, monthly.fees, monthly.transfer_volume,
       monthly.transfer_count, monthly.money_supply_end)
