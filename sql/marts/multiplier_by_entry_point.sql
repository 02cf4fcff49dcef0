-- Local multiplier by where money enters circulation (whole history, traced FIFO): for
-- each breakdown (dimension = account_type, sector or area of the account an issuance
-- was paid to, its first holder) the money issued there, how far it travelled (lm2, lm3,
-- full_multiplier = 1 + amount-weighted mean transfers made) and how it ended (shares
-- redeemed, paid as fees, still held). Groups of fewer than $k_anonymity distinct first
-- holders are suppressed (figures null), and when a dimension would show exactly one
-- hidden group its next smallest group is hidden too, so totals cannot reveal it.
with reach as (
    select * from intermediate.issuance_reach
),

transactions as (
    select * from staging.transactions
),

accounts as (
    select * from staging.accounts
),

entries as (
    select
        reach.*,
        transactions.target_id as holder_id,
        coalesce(accounts.account_type, 'unknown') as account_type,
        coalesce(nullif(accounts.sector, ''), coalesce(accounts.account_type, 'unknown'))
            as sector,
        coalesce(nullif(accounts.area, ''), 'unknown') as area
    from reach
    join transactions on transactions.txn_id = reach.txn_id
    left join accounts on accounts.account_id = transactions.target_id
),

by_group as (
    select
        dimension,
        group_value,
        count(distinct holder_id) as first_holders,
        sum(amount) as issued,
        sum(reach_1) as reach_1,
        sum(reach_2) as reach_2,
        sum(hop_amount) as hop_amount,
        sum(redeemed) as redeemed,
        sum(fees) as fees,
        sum(still_held) as still_held
    from (
        select 'account_type' as dimension, account_type as group_value, * from entries
        union all
        select 'sector' as dimension, sector as group_value, * from entries
        union all
        select 'area' as dimension, area as group_value, * from entries
    )
    group by dimension, group_value
),

ranked as (
    select
        *,
        first_holders < $k_anonymity as too_small,
        count(*) filter (where first_holders < $k_anonymity) over (partition by dimension)
            as hidden_in_dimension,
        row_number() over (
            partition by dimension, first_holders >= $k_anonymity
            order by first_holders, group_value
        ) as size_rank
    from by_group
)

select
    dimension,
    group_value,
    too_small or (hidden_in_dimension = 1 and not too_small and size_rank = 1) as suppressed,
    case when not suppressed then first_holders end as first_holders,
    case when not suppressed then cast(issued as decimal(18, 2)) end as issued,
    case when not suppressed then cast((issued + reach_1) / issued as double) end as lm2,
    case when not suppressed then cast((issued + reach_1 + reach_2) / issued as double) end
        as lm3,
    case when not suppressed then cast((issued + hop_amount) / issued as double) end
        as full_multiplier,
    case when not suppressed then cast(redeemed / issued as double) end as redeemed_share,
    case when not suppressed then cast(fees / issued as double) end as fees_share,
    case when not suppressed then cast(still_held / issued as double) end as still_held_share,
    cast($k_anonymity as integer) as k_anonymity
from ranked
order by dimension, group_value
