-- Every loaded ledger row can be traced to the input file and batch that brought it: a
-- row of raw.transactions whose (batch_id, source_file) has no loaded transactions file
-- in the manifest (audit.files) is returned.
with ledger as (
    select batch_id, source_file, count(*) as row_count
    from raw.transactions
    group by batch_id, source_file
),

manifest as (
    select batch_id, file_name
    from audit.files
    where file_role = 'transactions' and status = 'loaded'
)

select ledger.batch_id, ledger.source_file, ledger.row_count
from ledger
left join manifest
    on manifest.batch_id = ledger.batch_id and manifest.file_name = ledger.source_file
where manifest.file_name is null
