-- Complementary suppression holds: no row, column or period total of marts.area_flows,
-- and no cell's months-to-history line, has exactly one suppressed cell beside open ones
-- (its value would follow by subtraction).
with cells as (
    select *, suppressed::int as hidden, (not suppressed)::int as open
    from marts.area_flows
),

lines as (
    select 'row' as line, period_kind, period_start, source_area as payer, null as payee,
           sum(hidden) as hidden, sum(open) as open
    from cells group by all
    union all
    select 'column', period_kind, period_start, null, target_area, sum(hidden), sum(open)
    from cells group by all
    union all
    select 'period', period_kind, period_start, null, null, sum(hidden), sum(open)
    from cells group by all
    union all
    select 'history', null, null, source_area, target_area, sum(hidden), sum(open)
    from cells group by all
)

select * from lines where hidden = 1 and open > 0
