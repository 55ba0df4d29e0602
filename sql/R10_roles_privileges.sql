-- Roles and table privileges: the API roles, what each may do with every table, row level
-- security and its policies. Repeatable (sql/README.md): applied first of the repeatable
-- files, after every sql/migrations/NNNN_*.sql, whenever one of them changed or a migration
-- ran. Tables, columns, constraints and indexes live in the migrations, never here; a
-- function's EXECUTE grant sits beside the function in its own file. Safe to run any
-- number of times, locally or on hosted Supabase.

-- ---------------------------------------------------------------------------------------
-- Roles. Hosted Supabase already has them; the local stack creates them at init. We only
-- create what is missing so a bare Postgres works too.
-- ---------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  -- PostgREST switches from authenticator to the role named in the request's JWT.
  if not pg_has_role('authenticator', 'anon', 'member') then
    grant anon to authenticator;
  end if;
  if not pg_has_role('authenticator', 'authenticated', 'member') then
    grant authenticated to authenticator;
  end if;
  if not pg_has_role('authenticator', 'service_role', 'member') then
    grant service_role to authenticator;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Grants: least privilege, exactly sql/privileges.txt (the bootstrap revokes anything else,
-- and `--check` reports any difference). Hosted Supabase's default privileges grant ALL on
-- every new table and sequence to anon, authenticated and service_role, so start from none.
-- Identity columns need no sequence privilege to insert, so nobody gets one.
-- ---------------------------------------------------------------------------------------
grant usage on schema public to anon, authenticated, service_role;
revoke all on all tables in schema public from public, anon, authenticated, service_role;
revoke all on all sequences in schema public from public, anon, authenticated, service_role;

-- The service role (the API's server-side key) reads and writes the application tables.
grant select, insert, update, delete on public.users, public.categories,
  public.payment_methods, public.expenses, public.expense_monthly_totals,
  public.revoked_tokens, public.idempotency_keys, public.rate_limits to service_role;
-- Public reference data (GET /api/categories, /api/payment-methods use the anon key).
grant select on public.categories, public.payment_methods to anon, authenticated;
-- A Supabase JWT user ({"role":"authenticated","userId":N}) sees and adds its own expenses
-- (policies below); a member changes (these columns only) or deletes what they own or
-- recorded (issue 12; policies expenses_owner_or_recorder_update/_delete below).
grant select, insert on public.expenses to authenticated;
grant update (amount, category_id, payment_method_id, description, date, user_id),
  delete on public.expenses to authenticated;
-- The audit log is append-only for every API role: nobody but its owner may read, change
-- or delete it. Rows are written only by public.audit_write (R20_audit.sql), a SECURITY
-- DEFINER function.
revoke all on public.audit_log from public, anon, authenticated, service_role;
revoke all on sequence public.audit_log_id_seq from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Row level security on every table
-- ---------------------------------------------------------------------------------------
alter table public.users enable row level security;
alter table public.categories enable row level security;
alter table public.payment_methods enable row level security;
alter table public.expenses enable row level security;
alter table public.expense_monthly_totals enable row level security;
alter table public.revoked_tokens enable row level security;
alter table public.idempotency_keys enable row level security;
alter table public.rate_limits enable row level security;
alter table public.schema_bootstrap enable row level security;

-- The user id of a PostgREST request made with an `authenticated` JWT ({"role":
-- "authenticated", "userId": N}); null for anyone else.
create or replace function public.request_user_id() returns bigint
language sql stable
as $$
  select case
    when (nullif(current_setting('request.jwt.claims', true), '')::json ->> 'userId') ~ '^[0-9]{1,18}$'
    then (nullif(current_setting('request.jwt.claims', true), '')::json ->> 'userId')::bigint
  end
$$;
-- Used by the expenses policies, which are evaluated as the `authenticated` role.
revoke all on function public.request_user_id() from public, anon, service_role;
grant execute on function public.request_user_id() to authenticated;

drop policy if exists categories_read on public.categories;
create policy categories_read on public.categories
  for select to anon, authenticated using (true);

drop policy if exists payment_methods_read on public.payment_methods;
create policy payment_methods_read on public.payment_methods
  for select to anon, authenticated using (true);

-- The owning user (and nobody else but the service role) sees and adds expenses.
drop policy if exists expenses_owner_read on public.expenses;
create policy expenses_owner_read on public.expenses
  for select to authenticated using (user_id = public.request_user_id());

drop policy if exists expenses_owner_insert on public.expenses;
create policy expenses_owner_insert on public.expenses
  for insert to authenticated with check (user_id = public.request_user_id());

-- ---------------------------------------------------------------------------------------
-- Row level security for members writing through PostgREST with an `authenticated` JWT:
-- the same rule as update_expense/delete_expense — the owner (user_id) or the recorder
-- (created_by) may change or delete an expense, nobody else; and a member records as
-- themselves. Only the columns the API lets a member change are updatable.
-- ---------------------------------------------------------------------------------------
drop policy if exists expenses_recorder_read on public.expenses;
create policy expenses_recorder_read on public.expenses
  for select to authenticated using (created_by = public.request_user_id());

drop policy if exists expenses_owner_or_recorder_update on public.expenses;
create policy expenses_owner_or_recorder_update on public.expenses
  for update to authenticated
  using (user_id = public.request_user_id() or created_by = public.request_user_id())
  with check (true);

drop policy if exists expenses_owner_or_recorder_delete on public.expenses;
create policy expenses_owner_or_recorder_delete on public.expenses
  for delete to authenticated
  using (user_id = public.request_user_id() or created_by = public.request_user_id());

drop policy if exists expenses_recorded_by_caller on public.expenses;
create policy expenses_recorded_by_caller on public.expenses
  as restrictive for insert to authenticated
  with check (created_by = public.request_user_id());

-- users, totals, revoked_tokens, idempotency_keys, rate_limits: no policy at all, so only
-- the service role (BYPASSRLS) reads or writes them.
