-- Daily circulation in the scheme's timezone, zero-filled: money issued, redeemed and
-- taken as fees, transfer volume and count, money in circulation at the end of the day
-- (money_supply = cumulative issued - redeemed - fees) and active accounts (distinct
-- accounts paying or paid by a transfer that day).
with transactions as (
    select * from staging.transactions
),

spine as (
    select day from intermediate.day_spine
),

totals as (
    select
        local_day as day,
        sum(amount) filter (where kind = 'issuance') as issued,
        sum(amount) filter (where kind = 'redemption') as redeemed,
        sum(amount) filter (where kind = 'fee') as fees,
        sum(amount) filter (where kind = 'transfer') as transfer_volume,
        count(*) filter (where kind = 'transfer') as transfer_count
    from transactions
    group by local_day
),

active as (
    select day, count(distinct account_id) as active_accounts
    from (
        select local_day as day, source_id as account_id from transactions where kind = 'transfer'
        union all
        select local_day as day, target_id as account_id from transactions where kind = 'transfer'
    )
    group by day
),

filled as (
    select
        spine.day,
        coalesce(totals.issued, 0) as issued,
        coalesce(totals.redeemed, 0) as redeemed,
        coalesce(totals.fees, 0) as fees,
        coalesce(totals.transfer_volume, 0) as transfer_volume,
        coalesce(totals.transfer_count, 0) as transfer_count,
        coalesce(active.active_accounts, 0) as active_accounts
    from spine
    left join totals on totals.day = spine.day
    left join active on active.day = spine.day
)

select
    day,
    cast(issued as decimal(18, 2)) as issued,
    cast(redeemed as decimal(18, 2)) as redeemed,
    cast(fees as decimal(18, 2)) as fees,
    cast(transfer_volume as decimal(18, 2)) as transfer_volume,
    cast(transfer_count as bigint) as transfer_count,
    cast(
        sum(issued - redeemed - fees) over (order by day rows unbounded preceding)
        as decimal(18, 2)
    ) as money_supply,
    cast(active_accounts as bigint) as active_accounts
from filled
order by day
