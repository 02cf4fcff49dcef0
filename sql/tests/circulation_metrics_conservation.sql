-- Traced money is conserved: each issuance ends redeemed, as fees or still held, in full;
-- traced totals equal the ledger's issuance, redemptions and fees (member accounts), and
-- what is still held equals the final money supply.
with issuers as (
    select account_id from intermediate.issuer_accounts
),

reach as (
    select * from intermediate.issuance_reach
),

ledger as (
    select
        coalesce(sum(amount) filter (
            where source_id in (select account_id from issuers)
            and target_id not in (select account_id from issuers)
        ), 0) as issued,
        coalesce(sum(amount) filter (
            where kind = 'fee' and source_id not in (select account_id from issuers)
        ), 0) as fees,
        coalesce(sum(amount) filter (
            where kind <> 'fee' and source_id not in (select account_id from issuers)
            and target_id in (select account_id from issuers)
        ), 0) as redeemed
    from staging.transactions
),

traced as (
    select
        coalesce(sum(amount), 0) as issued,
        coalesce(sum(fees), 0) as fees,
        coalesce(sum(redeemed), 0) as redeemed,
        coalesce(sum(still_held), 0) as still_held
    from reach
),

supply as (
    select coalesce(sum(balance), 0) as balance from marts.account_balances
)

select txn_id, 'issuance not fully accounted for' as problem
from reach
where amount <> redeemed + fees + still_held
    or not (amount >= reach_1 and reach_1 >= reach_2 and reach_2 >= reach_3
        and reach_3 >= reach_4 and reach_4 >= 0)
union all
select null, 'traced totals differ from the ledger'
from traced, ledger, supply
where (traced.issued, traced.fees, traced.redeemed, traced.still_held)
    is distinct from (ledger.issued, ledger.fees, ledger.redeemed, supply.balance)
