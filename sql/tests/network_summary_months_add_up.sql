-- Monthly network volumes and transfer counts add up to the whole history, per scope.
with months as (
    select scope, sum(volume) as volume, sum(transfer_count) as transfer_count
    from marts.network_summary
    where period_kind = 'month'
    group by scope
),

whole as (
    select scope, volume, transfer_count
    from marts.network_summary
    where period_kind = 'all'
)

select whole.scope, whole.volume, months.volume as month_volume
from whole
full join months on months.scope = whole.scope
where whole.volume is distinct from months.volume
   or whole.transfer_count is distinct from months.transfer_count
