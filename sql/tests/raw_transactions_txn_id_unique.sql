-- A txn_id is loaded at most once across all batches (re-sends are duplicates or
-- quarantined conflicts, never a second ledger row).
select txn_id, count(*) as copies
from raw.transactions
group by txn_id
having count(*) > 1
