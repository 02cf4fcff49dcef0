-- Every calendar day from the first transaction to the later of the last transaction
-- and the last export file's day, so quiet days appear as zeros rather than gaps.
with transactions as (
    select * from staging.transactions
),

export_days as (
    select max(export_day) as last_export_day
    from audit.files
    where file_role = 'transactions' and status <> 'rejected'
),

bounds as (
    select
        min(local_day) as first_day,
        greatest(max(local_day), (select last_export_day from export_days)) as last_day
    from transactions
)

select cast(day as date) as day
from bounds, range(bounds.first_day, bounds.last_day + interval 1 day, interval 1 day) as t(day)
