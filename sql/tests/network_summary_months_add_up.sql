-- Monthly network volumes and transfer counts up to the whole history's as-of day add up
-- to the whole history, per scope (zero when no month up to then had a transfer); only
-- whole-history rows have an as-of day.
with months as (
    select months.scope, sum(months.volume) as volume, sum(months.transfer_count) as transfer_count
    from marts.network_summary as months
    left join marts.network_summary as whole
        on whole.scope = months.scope and whole.period_kind = 'all'
    where months.period_kind = 'month'
      and (whole.as_of_day is null or months.period_start <= whole.as_of_day)
    group by months.scope
),

whole as (
    select scope, volume, transfer_count
    from marts.network_summary
    where period_kind = 'all'
)

select whole.scope, whole.volume, months.volume as month_volume
from whole
full join months on months.scope = whole.scope
where whole.volume is distinct from coalesce(months.volume, 0)
   or whole.transfer_count is distinct from coalesce(months.transfer_count, 0)
union all
select scope, volume, null as month_volume
from marts.network_summary
where (as_of_day is null) <> (period_kind = 'month')
