-- Circulation and local-multiplier metrics, one row per period_kind (day, week = ISO week
-- from Monday, month, all = whole history) and period_start. Flows: issued, redeemed, fees,
-- transfer_volume, transfer_count, mean_money_supply (mean of end-of-day supply over the
-- period's days), velocity = transfer_volume / mean_money_supply (over the period, not
-- annualised), full_multiplier = (issued + transfer_volume) / issued, leakage = redeemed /
-- issued. Traced (FIFO, by the period the money was issued in, followed to today):
-- lm2..lm5 = sum over t < k of (issued money that made at least t transfers) / issued,
-- mean_trajectory_length = amount-weighted mean transfers made, still_held = part of that
-- issuance not yet redeemed (censored). markov_lm2..lm5 = Markov estimate (same period).
-- Holding (spells ended in the period, any outflow): mean_holding_days exact,
-- median_holding_days within one 2 % log bin. dormancy = share of supply at period end in
-- accounts with no outgoing transfer for 90+ days (counted from joining if they never
-- paid). Participation: active (paid or paid by a transfer), frequent (4+ transfers in a
-- month; months only), new (first transfer ever), churned (active in the previous
-- period, not this one). lm3_low/high, velocity_low/high: bootstrap 95 % intervals (all).
-- Dormancy and participation come from intermediate.period_activity, which computes a
-- period that ends on or before the latest month end once, when that month closes.
with daily as (
    select * from marts.daily_circulation
),

reach as (
    select * from intermediate.issuance_reach
),

spells as (
    select * from intermediate.holding_spells
),

markov as (
    select * from intermediate.markov_multipliers
),

intervals as (
    select * from intermediate.circulation_intervals
),

activity as (
    select * from intermediate.period_activity
),

periods as (
    select day, 'day' as period_kind, day as period_start from daily
    union all
    select day, 'week', cast(date_trunc('week', day) as date) from daily
    union all
    select day, 'month', cast(date_trunc('month', day) as date) from daily
    union all
    select day, 'all', (select min(day) from daily) from daily
),

flows as (
    select
        periods.period_kind,
        periods.period_start,
        max(daily.day) as period_end,
        sum(daily.issued) as issued,
        sum(daily.redeemed) as redeemed,
        sum(daily.fees) as fees,
        sum(daily.transfer_volume) as transfer_volume,
        sum(daily.transfer_count) as transfer_count,
        avg(daily.money_supply) as mean_money_supply
    from periods
    inner join daily on daily.day = periods.day
    group by all
),

traced as (
    select
        periods.period_kind,
        periods.period_start,
        sum(reach.amount) as traced_issued,
        sum(reach.reach_1) as reach_1,
        sum(reach.reach_2) as reach_2,
        sum(reach.reach_3) as reach_3,
        sum(reach.reach_4) as reach_4,
        sum(reach.hop_amount) as hop_amount,
        sum(reach.still_held) as still_held
    from periods
    inner join reach on reach.origin_day = periods.day
    group by all
),

spell_bins as (
    select
        periods.period_kind,
        periods.period_start,
        spells.bin,
        sum(spells.amount) as amount,
        sum(spells.amount_seconds) as amount_seconds
    from periods
    inner join spells on spells.exit_day = periods.day
    group by all
),

spell_cumulative as (
    select
        *,
        sum(amount) over (
            partition by period_kind, period_start order by bin rows unbounded preceding
        ) as cumulative,
        sum(amount) over (partition by period_kind, period_start) as total
    from spell_bins
),

holding as (
    select
        period_kind,
        period_start,
        sum(amount_seconds) / sum(amount) / 86400 as mean_holding_days,
        arg_min(amount_seconds / amount, bin) filter (where 2 * cumulative >= total) / 86400
            as median_holding_days
    from spell_cumulative
    group by all
)

select
    flows.period_kind,
    flows.period_start,
    flows.period_end,
    cast(flows.issued as decimal(18, 2)) as issued,
    cast(flows.redeemed as decimal(18, 2)) as redeemed,
    cast(flows.fees as decimal(18, 2)) as fees,
    cast(flows.transfer_volume as decimal(18, 2)) as transfer_volume,
    cast(flows.transfer_count as bigint) as transfer_count,
    cast(flows.mean_money_supply as decimal(18, 2)) as mean_money_supply,
    cast(flows.transfer_volume as double) / nullif(flows.mean_money_supply, 0) as velocity,
    cast(flows.issued + flows.transfer_volume as double) / nullif(flows.issued, 0)
        as full_multiplier,
    cast(flows.redeemed as double) / nullif(flows.issued, 0) as leakage,
    cast(traced.traced_issued + traced.reach_1 as double) / nullif(traced.traced_issued, 0)
        as lm2,
    cast(traced.traced_issued + traced.reach_1 + traced.reach_2 as double)
        / nullif(traced.traced_issued, 0) as lm3,
    cast(traced.traced_issued + traced.reach_1 + traced.reach_2 + traced.reach_3 as double)
        / nullif(traced.traced_issued, 0) as lm4,
    cast(
        traced.traced_issued + traced.reach_1 + traced.reach_2 + traced.reach_3 + traced.reach_4
        as double
    ) / nullif(traced.traced_issued, 0) as lm5,
    cast(traced.hop_amount as double) / nullif(traced.traced_issued, 0)
        as mean_trajectory_length,
    cast(coalesce(traced.still_held, 0) as decimal(18, 2)) as still_held,
    markov.markov_lm2,
    markov.markov_lm3,
    markov.markov_lm4,
    markov.markov_lm5,
    holding.mean_holding_days,
    holding.median_holding_days,
    cast(activity.dormant_supply as double) / nullif(activity.supply, 0) as dormancy,
    cast(coalesce(activity.active_accounts, 0) as bigint) as active_accounts,
    case
        when flows.period_kind = 'month'
            then cast(coalesce(activity.frequent_traders, 0) as bigint)
    end as frequent_traders,
    cast(coalesce(activity.new_accounts, 0) as bigint) as new_accounts,
    case
        when flows.period_kind <> 'all' then cast(coalesce(activity.churned_accounts, 0) as bigint)
    end as churned_accounts,
    intervals.lm3_low,
    intervals.lm3_high,
    intervals.velocity_low,
    intervals.velocity_high
from flows
left join traced using (period_kind, period_start)
left join markov using (period_kind, period_start)
left join holding using (period_kind, period_start)
left join activity using (period_kind, period_start)
left join intervals on intervals.period_kind = flows.period_kind
order by
    case flows.period_kind when 'all' then 0 when 'month' then 1 when 'week' then 2 else 3 end,
    flows.period_start
