-- Flags judge complete months only (a half-finished month never raises one), once per flag
-- and month, and each names its evidence and chart.
with flags as (
    select * from marts.risk_flags
),

months as (
    select distinct period_start, period_complete from marts.impact_scorecard
),

complete_exists as (
    select bool_or(period_complete) as any_complete from months
)

select flags.period_start, flags.flag, 'incomplete month judged' as problem
from flags
join months using (period_start)
cross join complete_exists
where complete_exists.any_complete and not months.period_complete
union all
select period_start, flag, 'duplicate' from flags group by all having count(*) > 1
union all
select period_start, flag, 'no evidence' from flags
where evidence is null or evidence = '' or chart is null
