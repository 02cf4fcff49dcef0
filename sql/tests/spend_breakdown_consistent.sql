-- Spend at businesses is part of individual spend, shares lie in [0, 1], and the months
-- add up to the whole history when none of them is suppressed.
with rows as (
    select * from marts.spend_breakdown
),

months as (
    select
        sum(individual_spend) as individual_spend,
        count(*) filter (where individual_spend is null) as hidden
    from rows
    where period_kind = 'month'
)

select period_kind, period_start, 'spend at businesses exceeds individual spend' as problem
from rows
where spend_at_businesses > individual_spend
   or local_business_share not between 0 and 1
union all
select 'all', null, 'months do not add up to the whole history'
from rows, months
where rows.period_kind = 'all' and months.hidden = 0
  and rows.individual_spend <> months.individual_spend
