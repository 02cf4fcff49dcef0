-- Monthly circulation (calendar months in the scheme's timezone): totals of the daily
-- figures, money in circulation at the month's last day, and active accounts (distinct
-- accounts paying or paid by a transfer in the month).
with daily as (
    select * from marts.daily_circulation
),

transactions as (
    select * from staging.transactions
),

active as (
    select month, count(distinct account_id) as active_accounts
    from (
        select date_trunc('month', local_day) as month, source_id as account_id
        from transactions where kind = 'transfer'
        union all
        select date_trunc('month', local_day) as month, target_id as account_id
        from transactions where kind = 'transfer'
    )
    group by month
)

select
    cast(date_trunc('month', daily.day) as date) as month,
    cast(sum(daily.issued) as decimal(18, 2)) as issued,
    cast(sum(daily.redeemed) as decimal(18, 2)) as redeemed,
    cast(sum(daily.fees) as decimal(18, 2)) as fees,
    cast(sum(daily.transfer_volume) as decimal(18, 2)) as transfer_volume,
    cast(sum(daily.transfer_count) as bigint) as transfer_count,
    cast(arg_max(daily.money_supply, daily.day) as decimal(18, 2)) as money_supply_end,
    cast(coalesce(any_value(active.active_accounts), 0) as bigint) as active_accounts
from daily
left join active on active.month = date_trunc('month', daily.day)
group by 1
order by 1
