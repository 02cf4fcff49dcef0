-- The daily mart adds up to the ledger it was built from, kind by kind.
with ledger as (
    select
        sum(amount) filter (where kind = 'issuance') as issued,
        sum(amount) filter (where kind = 'redemption') as redeemed,
        sum(amount) filter (where kind = 'fee') as fees,
        sum(amount) filter (where kind = 'transfer') as transfer_volume,
        count(*) filter (where kind = 'transfer') as transfer_count
    from raw.transactions
),

mart as (
    select
        sum(issued) as issued,
        sum(redeemed) as redeemed,
        sum(fees) as fees,
        sum(transfer_volume) as transfer_volume,
        sum(transfer_count) as transfer_count
    from marts.daily_circulation
)

select ledger.*, 'ledger' as side from ledger, mart
where (coalesce(ledger.issued, 0), coalesce(ledger.redeemed, 0), coalesce(ledger.fees, 0),
       coalesce(ledger.transfer_volume, 0), coalesce(ledger.transfer_count, 0))
   is distinct from
      (coalesce(mart.issued, 0), coalesce(mart.redeemed, 0), coalesce(mart.fees, 0),
       coalesce(mart.transfer_volume, 0), coalesce(mart.transfer_count, 0))
