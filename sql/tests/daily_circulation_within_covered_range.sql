-- The daily series covers exactly the days the inputs cover: from the first ledger day to
-- the later of the last ledger day and the last export file day (no range, and no daily
-- row, before the first transaction: a scheme's first exports may hold only a header). A
-- day outside that range, or a first or last day that differs from it, is returned.
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
        case when ledger.first_day is not null
            then greatest(ledger.last_day, files.last_day) end as last_day
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
