-- Complete tracing: every transfer between member accounts moves its amount one hop, so
-- the traced sum of amount x hops equals that transfer volume, and on the whole-history
-- row full_multiplier = 1 + mean_trajectory_length (when no transfer touches an issuer
-- account). Offending totals are returned.
with issuers as (
    select account_id from intermediate.issuer_accounts
),

ledger as (
    select
        coalesce(sum(amount) filter (
            where source_id not in (select account_id from issuers)
            and target_id not in (select account_id from issuers)
        ), 0) as member_transfer_volume,
        coalesce(sum(amount), 0) as transfer_volume
    from staging.transactions
    where kind = 'transfer'
),

traced as (
    select coalesce(sum(hop_amount), 0) as hop_amount from intermediate.issuance_reach
),

whole as (
    select full_multiplier, mean_trajectory_length
    from marts.circulation_metrics
    where period_kind = 'all'
)

select 'hop amount differs from member transfer volume' as problem, traced.hop_amount,
    ledger.member_transfer_volume as expected
from traced, ledger
where traced.hop_amount <> ledger.member_transfer_volume
union all
select 'full_multiplier <> 1 + mean_trajectory_length', whole.full_multiplier,
    1 + whole.mean_trajectory_length
from whole, ledger
where ledger.member_transfer_volume = ledger.transfer_volume
    and abs(whole.full_multiplier - (1 + whole.mean_trajectory_length)) > 1e-9
