-- Complementary suppression holds: no row, column or period total of marts.sector_flows,
-- and no cell's months-to-history line, has exactly one suppressed cell beside open ones
-- (its value would follow by subtraction).
with cells as (
    select *, suppressed::int as hidden, (not suppressed)::int as open
    from marts.sector_flows
),

lines as (
    select 'row' as line, period_kind, period_start, source_sector as payer, null as payee,
           sum(hidden) as hidden, sum(open) as open
    from cells group by all
    union all
    select 'column', period_kind, period_start, null, target_sector, sum(hidden), sum(open)
    from cells group by all
    union all
    select 'period', period_kind, period_start, null, null, sum(hidden), sum(open)
    from cells group by all
    union all
    select 'history', null, null, source_sector, target_sector, sum(hidden), sum(open)
    from cells group by all
)

select * from lines where hidden = 1 and open > 0
