-- Every loaded ledger row is staged exactly once: per load batch, staging.transactions
-- holds as many rows as raw.transactions. A night appends only its own batch to staging,
-- so a batch dropped or appended twice would show here.
with loaded as (
    select batch_id, count(*) as loaded_rows from raw.transactions group by batch_id
),

staged as (
    select batch_id, count(*) as staged_rows from staging.transactions group by batch_id
)

select batch_id, loaded.loaded_rows, staged.staged_rows
from loaded
full join staged using (batch_id)
where loaded.loaded_rows is distinct from staged.staged_rows
