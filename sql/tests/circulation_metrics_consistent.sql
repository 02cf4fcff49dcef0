-- Every period kind adds up to the whole history and to the daily mart; multipliers are
-- ordered (1 <= lm2 <= lm3 <= lm4 <= lm5, lm_k <= k, same for the Markov estimate); shares
-- lie in [0, 1]; bootstrap intervals are ordered.
with metrics as (
    select * from marts.circulation_metrics
),

by_kind as (
    select
        period_kind,
        sum(issued) as issued,
        sum(redeemed) as redeemed,
        sum(fees) as fees,
        sum(transfer_volume) as transfer_volume,
        sum(transfer_count) as transfer_count
    from metrics
    group by all
),

daily as (
    select
        sum(issued) as issued,
        sum(redeemed) as redeemed,
        sum(fees) as fees,
        sum(transfer_volume) as transfer_volume,
        sum(transfer_count) as transfer_count
    from marts.daily_circulation
)

select by_kind.period_kind, null as period_start, 'totals differ from daily' as problem
from by_kind, daily
where (by_kind.issued, by_kind.redeemed, by_kind.fees, by_kind.transfer_volume,
       by_kind.transfer_count)
   is distinct from
      (daily.issued, daily.redeemed, daily.fees, daily.transfer_volume, daily.transfer_count)
union all
select period_kind, period_start, 'multipliers out of order or range'
from metrics
where lm2 < 1 - 1e-12 or lm3 < lm2 - 1e-12 or lm4 < lm3 - 1e-12 or lm5 < lm4 - 1e-12
    or lm2 > 2 + 1e-12 or lm3 > 3 + 1e-12 or lm4 > 4 + 1e-12 or lm5 > 5 + 1e-12
    or markov_lm2 < 1 - 1e-12 or markov_lm3 < markov_lm2 - 1e-12
    or markov_lm4 < markov_lm3 - 1e-12 or markov_lm5 < markov_lm4 - 1e-12
    or markov_lm5 > 5 + 1e-12
    or full_multiplier < 1
union all
select period_kind, period_start, 'share or interval out of range'
from metrics
where dormancy < 0 or dormancy > 1 + 1e-12 or leakage < 0
    or lm3_low > lm3_high or velocity_low > velocity_high
    or median_holding_days < 0 or mean_holding_days < 0
    or (period_kind = 'all' and issued > 0 and lm3_low is null)
