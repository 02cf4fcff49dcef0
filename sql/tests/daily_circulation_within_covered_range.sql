-- The daily series covers exactly the days the inputs cover: from the first ledger day (or
-- export file day) to the last. A day outside that range, or a first or last day that
-- differs from it, is returned.
with ledger as (
    select min(local_day) as first_day, max(local_day) as last_day
    from staging.transactions
),

files as (
    select min(export_day) as first_day, max(export_day) as last_day
    from audit.files
    where file_role = 'transactions' and status <> 'rejected'
),

covered as (
    select
        ledger.first_day,
        greatest(ledger.last_day, files.last_day) as last_day
    from ledger, files
),

daily as (
    select min(day) as first_day, max(day) as last_day from marts.daily_circulation
)

select daily.first_day, daily.last_day, covered.first_day as covered_first_day,
       covered.last_day as covered_last_day
from daily, covered
where daily.first_day is distinct from covered.first_day
   or daily.last_day is distinct from covered.last_day
