-- Accounts that issue and take back the currency: listed as issuer in the accounts file,
-- or seen as the source of an issuance or the target of a redemption or fee. Their
-- balances are outside circulation.
with transactions as (
    select * from staging.transactions
),

accounts as (
    select * from staging.accounts
)

select account_id from accounts where account_type = 'issuer'
union
select source_id from transactions where kind = 'issuance'
union
select target_id from transactions where kind in ('redemption', 'fee')
